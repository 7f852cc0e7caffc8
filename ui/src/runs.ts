// runs.ts: the runs list (/ui/): filters by status, agent and time, new
// runs appear live, arrow keys move through the rows.
import type { Run, RunFilter, RunStatus } from "../../clients/typescript/src/index.ts";
import { ago, badge, between, duration, h, shortId, when } from "./dom.ts";
import type { Page } from "./main.ts";

const statuses: RunStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];
const ranges: [string, string, number][] = [
  ["", "Any time", 0],
  ["1h", "Last hour", 3600e3],
  ["24h", "Last 24 hours", 86400e3],
  ["7d", "Last 7 days", 7 * 86400e3],
  ["30d", "Last 30 days", 30 * 86400e3],
];

export const runsPage: Page = (main, ctx) => {
  document.title = "Runs · agentstore";
  const params = new URLSearchParams(location.search);
  const status = h("select", { id: "f-status", name: "status" }, h("option", { value: "" }, "Any status"), ...statuses.map((s) => h("option", { value: s }, s)));
  status.value = params.get("status") ?? "";
  const agent = h("input", { id: "f-agent", name: "agent", list: "agents", type: "search", placeholder: "any agent", autocomplete: "off" });
  agent.value = params.get("agent") ?? "";
  const agents = h("datalist", { id: "agents" });
  const range = h("select", { id: "f-range", name: "range" }, ...ranges.map(([v, label]) => h("option", { value: v }, label)));
  range.value = params.get("range") ?? "";
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter runs" },
    h("label", { for: "f-status" }, "Status"),
    status,
    h("label", { for: "f-agent" }, "Agent"),
    agent,
    agents,
    h("label", { for: "f-range" }, "Created"),
    range,
  );
  const announce = h("p", { class: "sr", "aria-live": "polite" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "runs", "aria-describedby": "runs-help" },
    h("caption", { class: "sr" }, "Runs, newest first"),
    h("thead", {}, h("tr", {}, ...["Status", "Agent", "Model", "Started", "Duration", "Run"].map((c) => h("th", { scope: "col" }, c)))),
    tbody,
  );
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more runs");
  const empty = h("p", { class: "muted", hidden: true }, "No run matches these filters.");
  main.append(
    h("h1", {}, "Runs"),
    form,
    h("p", { id: "runs-help", class: "muted small" }, "↑ and ↓ move between runs, Enter opens one. New runs appear at the top as they start."),
    announce,
    table,
    empty,
    more,
  );

  let cursor: string | null = null;
  let generation = 0;
  const rows = new Map<string, HTMLTableRowElement>();
  let painted = false;

  function filter(): RunFilter {
    const f: RunFilter = { limit: 50 };
    if (status.value) f.status = status.value as RunStatus;
    if (agent.value.trim()) f.agentName = agent.value.trim();
    const r = ranges.find(([v]) => v === range.value);
    if (r && r[2] > 0) f.createdAfter = new Date(Date.now() - r[2]).toISOString();
    return f;
  }

  function matches(run: Run): boolean {
    const f = filter();
    return (!f.status || run.status === f.status) && (!f.agentName || run.agentName === f.agentName) && (!f.createdAfter || run.createdAt >= f.createdAfter);
  }

  function row(run: Run): HTMLTableRowElement {
    const d = between(run.startedAt ?? run.createdAt, run.endedAt);
    const tr = h(
      "tr",
      { "data-id": run.id, class: run.status === "failed" ? "failed" : "" },
      h("td", {}, badge(run.status)),
      h(
        "td",
        {},
        h("a", { href: `/ui/runs/${run.id}`, class: "row-link" }, run.agentName),
        run.parentRunId ? h("span", { class: "muted small" }, " ↳ child run") : null,
        run.error ? h("div", { class: "small err-text" }, run.error) : null,
      ),
      h("td", {}, run.model ?? "—"),
      h("td", { title: when(run.startedAt ?? run.createdAt) }, ago(run.startedAt ?? run.createdAt)),
      h("td", {}, run.status === "running" || run.status === "queued" ? "running…" : duration(d)),
      h("td", {}, h("code", { title: run.id }, shortId(run.id))),
    );
    return tr;
  }

  async function load(reset: boolean) {
    const gen = reset ? ++generation : generation;
    if (reset) {
      cursor = null;
      const q = new URLSearchParams();
      if (status.value) q.set("status", status.value);
      if (agent.value.trim()) q.set("agent", agent.value.trim());
      if (range.value) q.set("range", range.value);
      const qs = q.toString();
      history.replaceState(null, "", "/ui/" + (qs ? "?" + qs : ""));
    }
    more.disabled = true;
    try {
      const page = await ctx.client.runs.list({ ...filter(), cursor: cursor ?? undefined });
      if (gen !== generation) return;
      if (reset) {
        tbody.replaceChildren();
        rows.clear();
      }
      for (const run of page.data) {
        const tr = row(run);
        rows.set(run.id, tr);
        tbody.append(tr);
      }
      cursor = page.nextCursor;
      more.hidden = !cursor;
      empty.hidden = rows.size > 0;
      if (!painted) {
        painted = true;
        requestAnimationFrame(() => performance.mark("ui:runs-list-painted"));
      }
    } catch (err) {
      ctx.failed(err);
    } finally {
      more.disabled = false;
    }
  }

  let debounce: ReturnType<typeof setTimeout> | undefined;
  form.addEventListener("submit", (e) => e.preventDefault());
  status.addEventListener("change", () => void load(true));
  range.addEventListener("change", () => void load(true));
  agent.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void load(true), 250);
  });
  more.addEventListener("click", () => void load(false));

  // Arrow keys move between the rows' links; Home and End jump.
  tbody.addEventListener("keydown", (e) => {
    const links = [...tbody.querySelectorAll<HTMLAnchorElement>("a.row-link")];
    const i = links.indexOf(document.activeElement as HTMLAnchorElement);
    if (i < 0) return;
    let j = i;
    if (e.key === "ArrowDown" || e.key === "j") j = Math.min(links.length - 1, i + 1);
    else if (e.key === "ArrowUp" || e.key === "k") j = Math.max(0, i - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = links.length - 1;
    else return;
    e.preventDefault();
    links[j]?.focus();
  });

  void load(true);
  ctx.client.runs
    .stats({ groupBy: "agentName" })
    .then((stats) => agents.replaceChildren(...stats.map((s) => h("option", { value: s.key }))))
    .catch(() => undefined);

  ctx.live("connecting");
  const sub = ctx.client.realtime.subscribe<Run>(
    "runs",
    (e) => {
      ctx.live("live");
      const run = e.data;
      if (e.event === "run.created" && matches(run) && !rows.has(run.id)) {
        const tr = row(run);
        tr.classList.add("new");
        rows.set(run.id, tr);
        tbody.prepend(tr);
        empty.hidden = true;
        announce.textContent = `New run: ${run.agentName} (${run.status})`;
      } else if (e.event === "run.updated") {
        const old = rows.get(run.id);
        if (old) {
          const tr = row(run);
          rows.set(run.id, tr);
          const focused = old.contains(document.activeElement);
          old.replaceWith(tr);
          if (focused) tr.querySelector<HTMLAnchorElement>("a.row-link")?.focus();
        }
      }
    },
    { onResync: () => void load(true) },
  );
  // ready also resolves when the subscription ends: only a live page says live.
  let stopped = false;
  void sub.ready.then(() => {
    if (!stopped) ctx.live("live");
  });
  return () => {
    stopped = true;
    clearTimeout(debounce);
    sub.unsubscribe();
    ctx.live("offline");
  };
};

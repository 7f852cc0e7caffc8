// run.ts: one run (/ui/runs/{id}): its header, child runs, and a waterfall
// of its steps and tool calls (Jaeger's trace timeline is the model),
// virtualised so that 20,000 steps keep the DOM small; a detail pane shows
// the selected row's input, output and error. New steps, tool calls and
// child runs arrive over the WebSocket, resumed with `since` after a drop.
import type { Run, Step, ToolCall } from "../../clients/typescript/src/index.ts";
import { stepsPage } from "./steps.ts";
import { badge, between, block, duration, errorBox, h, icon, kids, shortId, when } from "./dom.ts";
import type { Page } from "./main.ts";

type Item = { kind: "step"; step: Step } | { kind: "call"; call: ToolCall } | { kind: "child"; run: Run };

const ROW = 28; // px, every row
const OVERSCAN = 6;
const FIRST_PAGE = 300;
const NEXT_PAGE = 5000;

const startOf = (it: Item): number => {
  const t = it.kind === "step" ? (it.step.startedAt ?? it.step.createdAt) : it.kind === "call" ? (it.call.startedAt ?? it.call.createdAt) : (it.run.startedAt ?? it.run.createdAt);
  return Date.parse(t);
};
const endOf = (it: Item): number | null => {
  if (it.kind === "step") return it.step.endedAt ? Date.parse(it.step.endedAt) : null;
  if (it.kind === "call") {
    if (it.call.endedAt) return Date.parse(it.call.endedAt);
    return it.call.durationMs !== null ? startOf(it) + it.call.durationMs : null;
  }
  return it.run.endedAt ? Date.parse(it.run.endedAt) : null;
};
const statusOf = (it: Item): string => (it.kind === "step" ? it.step.status : it.kind === "call" ? it.call.status : it.run.status);
const labelOf = (it: Item): string =>
  it.kind === "step" ? `${it.step.name ?? it.step.type}` : it.kind === "call" ? `tool ${it.call.toolName}` : `child run ${it.run.agentName}`;

export const runPage: Page = (main, ctx, params) => {
  const id = params.id!;
  let run: Run | null = null;
  const steps: Step[] = [];
  const stepIds = new Set<string>();
  const calls = new Map<string, ToolCall>();
  const children = new Map<string, Run>();
  let items: Item[] = [];
  let active = 0;
  let follow = true;
  let stopped = false;
  let loaded = false;
  const buffered: (() => void)[] = [];
  const began = performance.now();

  // The skeleton: header, sections, the timeline and its detail pane.
  const head = h("div", { class: "run-head" });
  const childList = h("section", { class: "children", "aria-labelledby": "children-title", hidden: true });
  const summary = h("p", { class: "muted small", "aria-live": "polite" });
  const failNav = h("span", { class: "fail-nav" });
  const followBox = h("input", { type: "checkbox", id: "follow", checked: true });
  const spacer = h("div", { class: "tl-spacer" });
  const rowsEl = h("div", { class: "tl-rows" });
  const viewport = h("div", { class: "tl-viewport" }, spacer, rowsEl);
  const list = h(
    "div",
    { class: "timeline", role: "listbox", tabindex: 0, "aria-label": "Steps and tool calls, by time", "aria-describedby": "tl-help" },
    h(
      "div",
      { class: "tl-row tl-head", "aria-hidden": "true" },
      h("span", { class: "tl-seq" }, "#"),
      h("span", { class: "tl-name" }, "Step"),
      h("span", { class: "tl-dur" }, "Duration"),
      h("span", { class: "tl-bar-cell" }, h("span", { class: "tl-axis-start" }, "0"), h("span", { class: "tl-axis-end" }, "")),
    ),
    viewport,
  );
  const detail = h("aside", { class: "detail", "aria-label": "Selected step", "aria-live": "polite" });
  main.append(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "/ui/" }, "Runs"), " › ", h("span", { id: "crumb-run" }, shortId(id))),
    head,
    childList,
    h(
      "section",
      { class: "tl-section", "aria-labelledby": "tl-title" },
      h(
        "div",
        { class: "tl-toolbar" },
        h("h2", { id: "tl-title" }, "Timeline"),
        summary,
        failNav,
        h("label", { for: "follow", class: "small" }, followBox, " Follow new steps"),
      ),
      h("p", { id: "tl-help", class: "muted small" }, "Focus the timeline, then ↑ ↓ Page Up/Down Home End move the selection; the pane beside it shows the selected row."),
      h("div", { class: "tl-split" }, list, detail),
    ),
  );

  // --- the header -------------------------------------------------------
  function renderHead() {
    if (!run) return;
    document.title = `${run.agentName} · run ${shortId(run.id)} · agentstore`;
    document.getElementById("crumb-run")!.textContent = `${run.agentName} ${shortId(run.id)}`;
    const d = between(run.startedAt ?? run.createdAt, run.endedAt);
    const failedCalls = [...calls.values()].filter((c) => c.status === "failed").length;
    head.replaceChildren(
      ...kids(
      h("h1", {}, run.agentName, " ", badge(run.status)),
      errorBox(run.error, "Run failed"),
      h(
        "dl",
        { class: "meta" },
        ...meta([
          ["Run", h("code", {}, run.id)],
          ["Model", run.model ?? "—"],
          ["Started", when(run.startedAt ?? run.createdAt)],
          ["Ended", when(run.endedAt)],
          ["Duration", run.endedAt ? duration(d) : "running…"],
          ["Steps", String(steps.length)],
          ["Tool calls", `${calls.size}${failedCalls ? ` (${failedCalls} failed)` : ""}`],
          ["Parent", run.parentRunId ? h("a", { href: `/ui/runs/${run.parentRunId}` }, shortId(run.parentRunId)) : "—"],
        ]),
      ),
      h("div", { class: "blocks" }, block("Run input", run.input, false), block("Run output", run.output, false), block("Metadata", run.metadata, false)),
      ),
    );
  }
  function meta(rows: [string, Node | string][]): Node[] {
    return rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
  }

  function renderChildren() {
    const kids = [...children.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    childList.hidden = kids.length === 0;
    childList.replaceChildren(
      h("h2", { id: "children-title" }, `Child runs (${kids.length})`),
      h(
        "ul",
        {},
        ...kids.map((k) =>
          h(
            "li",
            {},
            badge(k.status),
            " ",
            h("a", { href: `/ui/runs/${k.id}` }, k.agentName),
            " ",
            h("span", { class: "muted small" }, `${shortId(k.id)} · ${k.endedAt ? duration(between(k.startedAt ?? k.createdAt, k.endedAt)) : "running…"}`),
            k.error ? h("div", { class: "small err-text" }, k.error) : null,
          ),
        ),
      ),
    );
  }

  // --- the rows ---------------------------------------------------------
  // Steps by seq, each followed by its tool calls; child runs and tool
  // calls of no step go after the last step that started before them.
  function rebuild() {
    const byStep = new Map<string, ToolCall[]>();
    const loose: Item[] = [];
    for (const c of calls.values()) {
      if (c.stepId && stepIds.has(c.stepId)) {
        const l = byStep.get(c.stepId) ?? [];
        l.push(c);
        byStep.set(c.stepId, l);
      } else loose.push({ kind: "call", call: c });
    }
    for (const r of children.values()) loose.push({ kind: "child", run: r });
    loose.sort((a, b) => startOf(a) - startOf(b));
    const out: Item[] = [];
    let li = 0;
    for (const st of steps) {
      const t = Date.parse(st.startedAt ?? st.createdAt);
      while (li < loose.length && startOf(loose[li]!) < t) out.push(loose[li++]!);
      out.push({ kind: "step", step: st });
      const cs = byStep.get(st.id);
      if (cs) {
        cs.sort((a, b) => startOf({ kind: "call", call: a }) - startOf({ kind: "call", call: b }));
        for (const c of cs) out.push({ kind: "call", call: c });
      }
    }
    while (li < loose.length) out.push(loose[li++]!);
    const atEnd = active >= items.length - 1;
    items = out;
    version++;
    if (follow && atEnd && items.length > 0) active = items.length - 1;
    active = Math.min(active, Math.max(0, items.length - 1));
  }

  // The time axis: from the run's start to its end (or now, while it runs).
  function span(): [number, number] {
    let t0 = run ? Date.parse(run.startedAt ?? run.createdAt) : Infinity;
    let t1 = run?.endedAt ? Date.parse(run.endedAt) : -Infinity;
    const first = items[0];
    const last = items[items.length - 1];
    if (first) t0 = Math.min(t0, startOf(first));
    if (last) t1 = Math.max(t1, endOf(last) ?? startOf(last));
    if (run && !run.endedAt) t1 = Math.max(t1, Date.now());
    if (!Number.isFinite(t0)) t0 = Date.now();
    if (!(t1 > t0)) t1 = t0 + 1;
    return [t0, t1];
  }

  // Rows are recycled: the element of item i is slot i % pool size, so a
  // row that stays in view is not touched while the list scrolls; only the
  // rows that come into view are filled. `version` changes when every
  // visible row must be drawn again (new items, a new time axis, a new
  // selection).
  interface RowEl {
    el: HTMLElement;
    seq: HTMLElement;
    icon: HTMLElement;
    iconText: HTMLElement;
    iconSr: HTMLElement;
    label: Text;
    type: HTMLElement;
    dur: HTMLElement;
    bar: HTMLElement;
    index: number;
    version: number;
  }
  const pool: RowEl[] = [];
  let version = 0;
  function rowEl(slot: number): RowEl {
    let r = pool[slot];
    if (!r) {
      const iconText = h("span", { "aria-hidden": "true" });
      const iconSr = h("span", { class: "sr" });
      const icon = h("span", { class: "icon" }, iconText, iconSr);
      const label = document.createTextNode("");
      const type = h("span", { class: "muted small" });
      const seq = h("span", { class: "tl-seq" });
      const dur = h("span", { class: "tl-dur" });
      const bar = h("span", { class: "tl-bar" });
      const el = h("div", { class: "tl-row", role: "option" }, seq, h("span", { class: "tl-name" }, icon, " ", label, type), dur, h("span", { class: "tl-bar-cell" }, bar));
      el.addEventListener("click", () => {
        select(Number(el.dataset.index));
        list.focus({ preventScroll: true });
      });
      r = { el, seq, icon, iconText, iconSr, label, type, dur, bar, index: -1, version: -1 };
      pool[slot] = r;
      rowsEl.append(el);
    }
    return r;
  }

  const symbols: Record<string, string> = { succeeded: "✓", failed: "✕", running: "▶", queued: "…", cancelled: "⊘" };
  function fill(r: RowEl, i: number, t0: number, total: number) {
    const it = items[i]!;
    const st = statusOf(it);
    const el = r.el;
    el.dataset.index = String(i);
    el.id = `tl-${i}`;
    el.className = `tl-row k-${it.kind} st-${st}${i === active ? " active" : ""}`;
    el.style.transform = `translateY(${i * ROW}px)`;
    el.setAttribute("aria-selected", i === active ? "true" : "false");
    el.setAttribute("aria-posinset", String(i + 1));
    el.setAttribute("aria-setsize", String(items.length));
    r.seq.textContent = it.kind === "step" ? String(it.step.seq) : "";
    if (it.kind === "step") el.dataset.seq = String(it.step.seq);
    else delete el.dataset.seq;
    r.icon.className = `icon st-${st}`;
    r.iconText.textContent = symbols[st] ?? "•";
    r.iconSr.textContent = st;
    r.label.data = ` ${labelOf(it)}`;
    r.type.textContent = it.kind === "step" ? ` ${it.step.type}` : "";
    const s0 = startOf(it);
    const e0 = endOf(it);
    r.dur.textContent = e0 === null ? (st === "running" ? "running…" : "—") : duration(e0 - s0);
    const left = ((s0 - t0) / total) * 100;
    const width = e0 === null ? (st === "running" ? ((Date.now() - s0) / total) * 100 : 0) : ((e0 - s0) / total) * 100;
    r.bar.style.left = `${Math.max(0, Math.min(100, left))}%`;
    r.bar.style.width = `max(2px, ${Math.max(0, Math.min(100 - left, width))}%)`;
    el.setAttribute("aria-label", `${it.kind === "step" ? `step ${it.step.seq}: ` : ""}${labelOf(it)}, ${st}, ${r.dur.textContent}`);
    r.index = i;
    r.version = version;
  }

  let frame = 0;
  let axis = "";
  let lastCount = -1;
  function schedule() {
    if (!frame) frame = requestAnimationFrame(paint);
  }
  function paint() {
    frame = 0;
    if (stopped) return;
    if (items.length !== lastCount) {
      lastCount = items.length;
      spacer.style.height = `${items.length * ROW}px`;
      // As tall as its rows, up to about two thirds of the window.
      viewport.style.height = `${Math.max(3 * ROW, Math.min(items.length * ROW + 2, Math.min(640, Math.round(window.innerHeight * 0.64))))}px`;
    }
    const top = viewport.scrollTop;
    const height = viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(items.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const [t0, t1] = span();
    const total = t1 - t0;
    const axisText = duration(total);
    if (axisText !== axis) {
      axis = axisText;
      (list.querySelector(".tl-axis-end") as HTMLElement).textContent = axisText;
    }
    const size = Math.ceil(height / ROW) + 2 * OVERSCAN + 2;
    const used = new Set<number>();
    for (let i = first; i < last; i++) {
      const slot = i % size;
      used.add(slot);
      const r = rowEl(slot);
      if (r.index !== i || r.version !== version) fill(r, i, t0, total);
      if (r.el.hidden) r.el.hidden = false;
    }
    for (let k = 0; k < pool.length; k++) if (!used.has(k) && !pool[k]!.el.hidden) {
      pool[k]!.el.hidden = true;
      pool[k]!.index = -1;
    }
    list.setAttribute("aria-activedescendant", items.length ? `tl-${active}` : "");
  }

  function select(i: number, scroll = false) {
    if (items.length === 0) return;
    active = Math.max(0, Math.min(items.length - 1, i));
    follow = active === items.length - 1 && followBox.checked;
    version++;
    if (scroll) {
      const top = active * ROW;
      if (top < viewport.scrollTop) viewport.scrollTop = top;
      else if (top + ROW > viewport.scrollTop + viewport.clientHeight) viewport.scrollTop = top + ROW - viewport.clientHeight;
    }
    schedule();
    renderDetail();
  }

  function renderDetail() {
    const it = items[active];
    if (!it) {
      detail.replaceChildren(h("p", { class: "muted" }, loaded ? "This run has no steps yet." : "Loading…"));
      return;
    }
    const st = statusOf(it);
    const s0 = startOf(it);
    const e0 = endOf(it);
    const common = [
      h("dl", { class: "meta" }, ...meta([["Status", badge(st)], ["Started", when(new Date(s0).toISOString())], ["Duration", e0 === null ? "—" : duration(e0 - s0)]])),
    ];
    if (it.kind === "step") {
      const s = it.step;
      const own = [...calls.values()].filter((c) => c.stepId === s.id);
      detail.replaceChildren(
        ...kids(
          h("h3", {}, `Step ${s.seq}: ${s.name ?? s.type}`, h("span", { class: "muted small" }, ` (${s.type})`)),
          ...common,
          errorBox(s.error),
          block("Input", s.input),
          block("Output", s.output),
          own.length ? h("h4", {}, `Tool calls (${own.length})`) : null,
          ...own.map((c) => callBlock(c)),
        ),
      );
    } else if (it.kind === "call") {
      const c = it.call;
      detail.replaceChildren(...kids(h("h3", {}, `Tool call: ${c.toolName}`), ...common, errorBox(c.error), block("Arguments", c.arguments), block("Result", c.result)));
    } else {
      const r = it.run;
      detail.replaceChildren(
        ...kids(
          h("h3", {}, `Child run: ${r.agentName}`),
          ...common,
          errorBox(r.error),
          h("p", {}, h("a", { href: `/ui/runs/${r.id}` }, `Open child run ${shortId(r.id)} →`)),
          block("Input", r.input, false),
          block("Output", r.output, false),
        ),
      );
    }
  }

  function callBlock(c: ToolCall): HTMLElement {
    return h(
      "details",
      { class: `block call st-${c.status}`, open: c.status === "failed" },
      h("summary", {}, icon(c.status), ` ${c.toolName} · ${c.status} · ${duration(c.durationMs)}`),
      errorBox(c.error),
      block("Arguments", c.arguments),
      block("Result", c.result),
    );
  }

  function renderSummary() {
    const failed = items.reduce<number[]>((acc, it, i) => (statusOf(it) === "failed" ? (acc.push(i), acc) : acc), []);
    summary.textContent = `${steps.length} steps, ${calls.size} tool calls, ${children.size} child runs${failed.length ? `, ${failed.length} failed` : ""}`;
    failNav.replaceChildren();
    if (failed.length) {
      const prev = h("button", { type: "button" }, "◀ Previous failure");
      const next = h("button", { type: "button" }, "Next failure ▶");
      prev.addEventListener("click", () => select([...failed].reverse().find((i) => i < active) ?? failed[failed.length - 1]!, true));
      next.addEventListener("click", () => select(failed.find((i) => i > active) ?? failed[0]!, true));
      failNav.append(prev, next);
    }
  }

  let refresh = 0;
  function changed() {
    if (refresh) return;
    refresh = requestAnimationFrame(() => {
      refresh = 0;
      rebuild();
      renderHead();
      renderSummary();
      if (follow) select(active, true);
      else schedule();
      if (follow || !detail.firstChild) renderDetail();
    });
  }

  // --- keyboard and scrolling ------------------------------------------
  list.addEventListener("keydown", (e) => {
    const pageRows = Math.max(1, Math.floor(viewport.clientHeight / ROW) - 1);
    const moves: Record<string, number> = { ArrowDown: 1, j: 1, ArrowUp: -1, k: -1, PageDown: pageRows, PageUp: -pageRows };
    let to: number | undefined;
    if (e.key in moves) to = active + moves[e.key]!;
    else if (e.key === "Home") to = 0;
    else if (e.key === "End") to = items.length - 1;
    else if (e.key === "Enter") {
      const it = items[active];
      if (it?.kind === "child") ctx.navigate(`/ui/runs/${it.run.id}`);
      else detail.querySelector<HTMLElement>("summary, a, pre")?.focus();
      e.preventDefault();
      return;
    } else return;
    e.preventDefault();
    select(to, true);
  });
  viewport.addEventListener("scroll", schedule, { passive: true });
  followBox.addEventListener("change", () => {
    follow = followBox.checked;
    if (follow) select(items.length - 1, true);
  });
  const ticker = setInterval(() => {
    if (run && !run.endedAt) {
      version++; // the axis grows while the run goes on
      schedule();
    }
  }, 1000);

  // --- data -------------------------------------------------------------
  function addStep(s: Step) {
    if (stepIds.has(s.id)) return;
    stepIds.add(s.id);
    const last = steps[steps.length - 1];
    if (!last || s.seq > last.seq) steps.push(s);
    else {
      steps.push(s);
      steps.sort((a, b) => a.seq - b.seq);
    }
  }
  const apply = (fn: () => void) => {
    if (loaded) {
      fn();
      changed();
    } else buffered.push(fn);
  };

  // Subscribe before reading, so that nothing committed in between is lost:
  // events that arrive while the REST reads run are applied after them.
  const runSub = ctx.client.realtime.subscribe<any>(
    `run:${id}`,
    (e) => {
      ctx.live("live");
      apply(() => {
        if (e.event === "step.appended") addStep(e.data as Step);
        else if (e.event === "toolcall.recorded") calls.set(e.data.id, e.data as ToolCall);
        else if (e.event === "run.updated" || e.event === "run.created") run = e.data as Run;
      });
    },
    { onResync: () => void reload(), onError: (err) => ctx.failed(new Error(`live updates: ${err.message}`)) },
  );
  const runsSub = ctx.client.realtime.subscribe<Run>("runs", (e) => {
    if (e.data?.parentRunId === id)
      apply(() => {
        children.set(e.data.id, e.data);
        renderChildren();
      });
  });
  ctx.live("connecting");
  // ready also resolves when a subscription ends: only a live page says live.
  void Promise.all([runSub.ready, runsSub.ready]).then(() => {
    if (!stopped) ctx.live("live");
  });

  // Steps come page by page: the first small page paints at once, the
  // rest follows in large pages.
  async function loadSteps(cursor?: string) {
    let size = cursor ? NEXT_PAGE : FIRST_PAGE;
    for (;;) {
      const page = await stepsPage(ctx.baseUrl, ctx.token, id, size, cursor);
      if (stopped) return;
      for (const s of page.data) addStep(s);
      changed();
      if (!page.nextCursor) return;
      cursor = page.nextCursor;
      size = NEXT_PAGE;
      await new Promise((r) => setTimeout(r, 0)); // let the page paint and scroll between pages
    }
  }

  async function load() {
    try {
      const [r, firstSteps, tcs, kids] = await Promise.all([
        ctx.client.runs.get(id),
        stepsPage(ctx.baseUrl, ctx.token, id, FIRST_PAGE),
        ctx.client.toolCalls.list(id),
        ctx.client.runs.list({ parentRunId: id, limit: 200 }),
      ]);
      if (stopped) return;
      run = r;
      for (const s of firstSteps.data) addStep(s);
      for (const c of tcs) calls.set(c.id, c);
      for (const k of kids.data) children.set(k.id, k);
      loaded = true;
      for (const fn of buffered.splice(0)) fn();
      follow = run.endedAt === null;
      followBox.checked = follow;
      rebuild();
      if (!follow) active = 0;
      renderHead();
      renderChildren();
      renderSummary();
      paint();
      if (follow) select(items.length - 1, true);
      renderDetail();
      requestAnimationFrame(() => {
        performance.mark("ui:run-painted");
        performance.measure("ui:run-first-paint", { start: began, end: performance.now() });
      });
      if (firstSteps.nextCursor) await loadSteps(firstSteps.nextCursor);
      // After the frame that draws the last page (changed() queued it first).
      requestAnimationFrame(() => {
        if (!stopped) performance.mark("ui:run-all-steps");
      });
    } catch (err) {
      ctx.failed(err);
    }
  }

  // A gap the server could not replay: read everything again and merge.
  async function reload() {
    try {
      const [r, tcs, kids] = await Promise.all([ctx.client.runs.get(id), ctx.client.toolCalls.list(id), ctx.client.runs.list({ parentRunId: id, limit: 200 })]);
      run = r;
      for (const c of tcs) calls.set(c.id, c);
      for (const k of kids.data) children.set(k.id, k);
      await loadSteps();
      renderChildren();
      changed();
    } catch (err) {
      ctx.failed(err);
    }
  }

  renderDetail();
  void load();
  return () => {
    stopped = true;
    clearInterval(ticker);
    cancelAnimationFrame(frame);
    cancelAnimationFrame(refresh);
    runSub.unsubscribe();
    runsSub.unsubscribe();
    ctx.live("offline");
  };
};

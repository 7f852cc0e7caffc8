// health.ts: each component's latest status and its history (/ui/health),
// as a strip of checks where each status has its own symbol and pattern.
import type { Health } from "../../clients/typescript/src/index.ts";
import { badge, h, s, when } from "./dom.ts";
import type { Page } from "./main.ts";

const HOURS = 72;

export const healthPage: Page = (main, ctx) => {
  document.title = "Health · agentstore";
  const out = h("div", { "aria-busy": "true" });
  main.append(
    h("h1", {}, "System health"),
    h("p", { class: "muted small" }, `Each component's checks over the last ${HOURS} hours, oldest on the left: a full bar is up (✓), a half bar degraded (!), a short bar down (✕).`),
    out,
  );
  void (async () => {
    try {
      const latest = (await ctx.client.health.get()).sort((a, b) => a.component.localeCompare(b.component));
      const to = new Date();
      const from = new Date(to.getTime() - HOURS * 3600e3);
      const histories = await Promise.all(
        latest.map((l) => ctx.client.health.get({ component: l.component, from: from.toISOString(), to: to.toISOString(), limit: 200 })),
      );
      out.replaceChildren(
        ...(latest.length === 0 ? [h("p", { class: "muted" }, "No health checks recorded yet.")] : []),
        ...latest.map((l, i) => component(l, histories[i] ?? [], from.getTime(), to.getTime())),
      );
      out.setAttribute("aria-busy", "false");
    } catch (err) {
      ctx.failed(err);
    }
  })();
};

function component(latest: Health, history: Health[], t0: number, t1: number): HTMLElement {
  const checks = [...history].sort((a, b) => a.checkedAt.localeCompare(b.checkedAt));
  const W = 760;
  const H = 34;
  const counts = { up: 0, degraded: 0, down: 0 };
  for (const c of checks) counts[c.status]++;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "strip", role: "img", "aria-label": `${latest.component}: ${counts.up} checks up, ${counts.degraded} degraded, ${counts.down} down in the last ${HOURS} hours` },
  );
  // Each status has its own height as well as its colour: a full bar is
  // up, a half bar degraded, a short bar down.
  const cw = Math.max(2, W / Math.max(1, checks.length));
  const full = H - 8;
  const heights: Record<string, number> = { up: full, degraded: full * 0.55, down: full * 0.25 };
  checks.forEach((c) => {
    const x = ((Date.parse(c.checkedAt) - t0) / (t1 - t0)) * (W - cw);
    const hgt = heights[c.status] ?? full;
    svg.append(
      s("rect", { x, y: 4 + full - hgt, width: Math.max(1, cw - 1), height: hgt, class: `cell st-${c.status}` }, s("title", {}, `${when(c.checkedAt)}: ${c.status}${c.latencyMs !== null ? `, ${c.latencyMs} ms` : ""}`)),
    );
  });
  const incidents = checks.filter((c) => c.status !== "up");
  return h(
    "section",
    { class: "component", "aria-labelledby": `h-${latest.component}` },
    h("h2", { id: `h-${latest.component}` }, latest.component, " ", badge(latest.status)),
    h("p", { class: "muted small" }, `Last check ${when(latest.checkedAt)}${latest.latencyMs !== null ? ` · ${latest.latencyMs} ms` : ""} · ${checks.length} checks: ${counts.up} up, ${counts.degraded} degraded, ${counts.down} down`),
    svg,
    incidents.length
      ? h(
          "details",
          { class: "block" },
          h("summary", {}, `${incidents.length} check${incidents.length === 1 ? "" : "s"} not up`),
          h("ul", { class: "incidents" }, ...incidents.map((c) => h("li", {}, badge(c.status), ` ${when(c.checkedAt)}`, c.latencyMs !== null ? ` · ${c.latencyMs} ms` : ""))),
        )
      : null,
  );
}

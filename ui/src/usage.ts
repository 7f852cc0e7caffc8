// usage.ts: tokens and cost per day and per model (/ui/usage).
import type { UsageSummary } from "../../clients/typescript/src/index.ts";
import { barChart } from "./chart.ts";
import { h } from "./dom.ts";
import type { Page } from "./main.ts";

const tokens = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M` : v >= 1e3 ? `${(v / 1e3).toFixed(0)}k` : String(Math.round(v)));
const usd = (v: number) => `$${v >= 100 ? v.toFixed(0) : v.toFixed(2)}`;

export const usagePage: Page = (main, ctx) => {
  document.title = "Usage · agentstore";
  const days = h("select", { id: "u-days" }, ...[7, 30, 90].map((d) => h("option", { value: d }, `Last ${d} days`)));
  days.value = "30";
  const out = h("div", { class: "charts", "aria-busy": "true" });
  main.append(
    h("h1", {}, "Usage"),
    h("form", { class: "filters", "aria-label": "Usage period" }, h("label", { for: "u-days" }, "Period"), days),
    out,
  );
  let gen = 0;
  async function load() {
    const g = ++gen;
    const n = Number(days.value);
    const to = new Date();
    const from = new Date(Date.UTC(to.getUTCFullYear(), to.getUTCMonth(), to.getUTCDate() - (n - 1)));
    out.setAttribute("aria-busy", "true");
    try {
      const [byDay, byModel] = await Promise.all([
        ctx.client.usage.summary({ from: from.toISOString(), to: to.toISOString(), groupBy: "day" }),
        ctx.client.usage.summary({ from: from.toISOString(), to: to.toISOString(), groupBy: "model" }),
      ]);
      if (g !== gen) return;
      // Every day of the period, with zeros where nothing was recorded.
      const index = new Map(byDay.map((d) => [String(d.key ?? "").slice(0, 10), d]));
      const labels: string[] = [];
      const rows: (UsageSummary | undefined)[] = [];
      for (let i = 0; i < n; i++) {
        const d = new Date(from.getTime() + i * 86400e3).toISOString().slice(0, 10);
        labels.push(d.slice(5));
        rows.push(index.get(d));
      }
      const models = [...byModel].sort((a, b) => b.costUsd - a.costUsd);
      const total = byModel.reduce((a, m) => ({ t: a.t + m.totalTokens, c: a.c + m.costUsd }), { t: 0, c: 0 });
      out.replaceChildren(
        h(
          "dl",
          { class: "meta totals" },
          h("dt", {}, "Tokens"),
          h("dd", {}, tokens(total.t)),
          h("dt", {}, "Cost"),
          h("dd", {}, usd(total.c)),
          h("dt", {}, "Models"),
          h("dd", {}, String(models.length)),
        ),
        barChart({
          title: "Tokens per day (UTC)",
          labels,
          stacked: true,
          format: tokens,
          series: [
            { name: "Input tokens", cls: "s1", values: rows.map((r) => r?.inputTokens ?? 0) },
            { name: "Output tokens", cls: "s2", values: rows.map((r) => r?.outputTokens ?? 0) },
          ],
        }),
        barChart({ title: "Cost per day (USD)", labels, format: usd, series: [{ name: "Cost", cls: "s3", values: rows.map((r) => r?.costUsd ?? 0) }] }),
        barChart({
          title: "Tokens per model",
          labels: models.map((m) => m.key ?? "(none)"),
          stacked: true,
          format: tokens,
          height: 240,
          series: [
            { name: "Input tokens", cls: "s1", values: models.map((m) => m.inputTokens) },
            { name: "Output tokens", cls: "s2", values: models.map((m) => m.outputTokens) },
          ],
        }),
        barChart({ title: "Cost per model (USD)", labels: models.map((m) => m.key ?? "(none)"), format: usd, height: 240, series: [{ name: "Cost", cls: "s3", values: models.map((m) => m.costUsd) }] }),
      );
      if (byDay.length === 0) out.prepend(h("p", { class: "muted" }, "No usage recorded in this period."));
      out.setAttribute("aria-busy", "false");
      performance.mark("ui:usage-painted");
    } catch (err) {
      ctx.failed(err);
    }
  }
  days.addEventListener("change", () => void load());
  void load();
};

// chart.ts: bar charts drawn as SVG by this code (no chart library, nothing
// fetched). Each chart has a title and description for screen readers, a
// <title> per bar for pointer users, and a data table beside it.
import { h, s } from "./dom.ts";

export interface Series {
  name: string;
  /** A CSS class giving the series its fill and pattern (see style.css). */
  cls: string;
  values: number[];
}

export interface BarChartOptions {
  title: string;
  labels: string[];
  series: Series[];
  /** Stacked bars (one per label) or grouped bars. */
  stacked?: boolean;
  format: (v: number) => string;
  width?: number;
  height?: number;
}

/** niceMax rounds a maximum up to 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** barChart returns a figure: the SVG, a legend, and the numbers as a table. */
export function barChart(o: BarChartOptions): HTMLElement {
  const W = o.width ?? 760;
  const H = o.height ?? 260;
  const m = { top: 12, right: 12, bottom: 48, left: 72 };
  const iw = W - m.left - m.right;
  const ih = H - m.top - m.bottom;
  const n = o.labels.length;
  const totals = o.labels.map((_, i) => (o.stacked ? o.series.reduce((a, se) => a + (se.values[i] ?? 0), 0) : Math.max(...o.series.map((se) => se.values[i] ?? 0))));
  const max = niceMax(Math.max(0, ...totals));
  const y = (v: number) => ih - (v / max) * ih;
  const band = iw / Math.max(1, n);
  const id = `c${Math.random().toString(36).slice(2, 8)}`;
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "chart", preserveAspectRatio: "xMidYMid meet" },
    s("title", { id: `${id}-t` }, o.title),
    s("desc", { id: `${id}-d` }, `Bar chart of ${o.series.map((se) => se.name).join(" and ")} for ${n} ${n === 1 ? "group" : "groups"}; the table below has the numbers.`),
  );
  const g = s("g", { transform: `translate(${m.left},${m.top})` });
  svg.append(g);
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    g.append(
      s("line", { x1: 0, x2: iw, y1: y(v), y2: y(v), class: "grid" }),
      s("text", { x: -8, y: y(v), class: "tick", "text-anchor": "end", "dominant-baseline": "middle" }, o.format(v)),
    );
  }
  const every = Math.max(1, Math.ceil(n / 12));
  o.labels.forEach((label, i) => {
    const x0 = i * band + band * 0.15;
    const bw = band * 0.7;
    let acc = 0;
    o.series.forEach((se, k) => {
      const v = se.values[i] ?? 0;
      let x = x0;
      let w = bw;
      let top = y(v);
      let hgt = ih - y(v);
      if (o.stacked) {
        top = y(acc + v);
        hgt = y(acc) - y(acc + v);
        acc += v;
      } else {
        w = bw / o.series.length;
        x = x0 + k * w;
      }
      g.append(s("rect", { x, y: top, width: Math.max(0, w - 1), height: Math.max(0, hgt), class: `bar ${se.cls}` }, s("title", {}, `${label} · ${se.name}: ${o.format(v)}`)));
    });
    if (i % every === 0) g.append(s("text", { x: i * band + band / 2, y: ih + 16, class: "tick", "text-anchor": "middle" }, label));
  });
  g.append(s("line", { x1: 0, x2: iw, y1: ih, y2: ih, class: "axis" }));

  const legend = h("ul", { class: "legend" }, ...o.series.map((se) => h("li", {}, h("span", { class: `swatch ${se.cls}`, "aria-hidden": "true" }), se.name)));
  const table = h(
    "table",
    { class: "data" },
    h("caption", {}, `${o.title} (numbers)`),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), ...o.series.map((se) => h("th", { scope: "col" }, se.name)))),
    h("tbody", {}, ...o.labels.map((l, i) => h("tr", {}, h("th", { scope: "row" }, l), ...o.series.map((se) => h("td", {}, o.format(se.values[i] ?? 0)))))),
  );
  return h("figure", { class: "chart-fig" }, h("figcaption", {}, o.title), svg, legend, h("details", { class: "block" }, h("summary", {}, "Show the numbers"), table));
}

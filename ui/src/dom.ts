// dom.ts: small helpers to build the DOM without a framework. Text always
// goes in as text nodes (never innerHTML), so data cannot inject markup.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** h creates an element with attributes (on* keys become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";

/** s creates an SVG element. */
export function s(tag: string, attrs: Record<string, string | number | undefined> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

function append(el: Element, children: Child[]) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** clear removes every child of el. */
export function clear(el: Element) {
  el.replaceChildren();
}

/** duration formats milliseconds for people: 840 ms, 1.24 s, 3 min 05 s. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  const sec = Math.round((ms % 60_000) / 1000);
  if (m < 60) return `${m} min ${String(sec).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** between is the milliseconds from a to b, null when either is missing. */
export function between(a: string | null | undefined, b: string | null | undefined): number | null {
  if (!a || !b) return null;
  return Date.parse(b) - Date.parse(a);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** when formats a timestamp in the reader's zone. */
export function when(t: string | null | undefined): string {
  return t ? dateTime.format(new Date(t)) : "—";
}

/** ago is a short relative time: 5 s ago, 3 min ago, 2 h ago, 4 d ago. */
export function ago(t: string | null | undefined, now = Date.now()): string {
  if (!t) return "—";
  const d = Math.max(0, now - Date.parse(t)) / 1000;
  if (d < 60) return `${Math.round(d)} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  if (d < 86400) return `${Math.round(d / 3600)} h ago`;
  return `${Math.round(d / 86400)} d ago`;
}

/** Status words and the symbol shown beside them: failure is never colour alone. */
const icons: Record<string, string> = {
  succeeded: "✓",
  up: "✓",
  failed: "✕",
  down: "✕",
  running: "▶",
  queued: "…",
  cancelled: "⊘",
  degraded: "!",
};

/** badge is a status as a symbol and a word. */
export function badge(status: string): HTMLElement {
  return h("span", { class: `badge st-${status}` }, h("span", { "aria-hidden": "true" }, icons[status] ?? "•"), " ", status);
}

/** icon is the status symbol alone, with the word for screen readers. */
export function icon(status: string): HTMLElement {
  return h("span", { class: `icon st-${status}`, title: status }, h("span", { "aria-hidden": "true" }, icons[status] ?? "•"), h("span", { class: "sr" }, status));
}

/** pretty renders a JSON value readably: strings as text, the rest indented. */
export function pretty(v: unknown): string {
  if (typeof v === "string") return v;
  const text = JSON.stringify(v, null, 2) ?? "null";
  return text.length > 200_000 ? text.slice(0, 200_000) + "\n… (truncated)" : text;
}

/** block is a collapsible section holding a JSON value. */
export function block(title: string, v: unknown, open = true, cls = ""): HTMLElement | null {
  if (v === null || v === undefined) return null;
  return h("details", { class: `block ${cls}`, open }, h("summary", {}, title), h("pre", { tabindex: 0 }, pretty(v)));
}

/** errorBox is an error message that stands out by more than its colour. */
export function errorBox(message: string | null | undefined, label = "Error"): HTMLElement | null {
  if (!message) return null;
  return h("div", { class: "error-box", role: "group", "aria-label": label }, h("strong", {}, h("span", { "aria-hidden": "true" }, "✕ "), `${label}: `), message);
}

/** shortId is the end of a UUID (its random part; v7 ids start with the time), for display. */
export function shortId(id: string): string {
  return id.slice(-8);
}

/** kids drops the empty children, for replaceChildren. */
export function kids(...c: (Node | string | null | undefined | false)[]): (Node | string)[] {
  return c.filter((x): x is Node | string => x !== null && x !== undefined && x !== false);
}

// main.ts: sign-in, the header and the router of the run viewer (/ui).
import { AgentstoreError, createClient } from "../../clients/typescript/src/index.ts";
import type { AgentstoreClient } from "../../clients/typescript/src/index.ts";
import { h } from "./dom.ts";
import { healthPage } from "./health.ts";
import { runPage } from "./run.ts";
import { runsPage } from "./runs.ts";
import { usagePage } from "./usage.ts";

/** What a page gets: the client, the token, and a way to navigate. */
export interface Ctx {
  client: AgentstoreClient;
  token: string;
  baseUrl: string;
  navigate(path: string): void;
  /** live reports the realtime state in the header. */
  live(state: "live" | "connecting" | "offline"): void;
  /** failed shows an API failure; a refused token signs out. */
  failed(err: unknown): void;
}

/** A page renders into main and returns what stops it (subscriptions, timers). */
export type Page = (main: HTMLElement, ctx: Ctx, params: Record<string, string>) => (() => void) | void;

const TOKEN_KEY = "agentstore.token";
const base = location.origin;

/**
 * takeFragmentToken moves a #token=<jwt> fragment into sessionStorage and
 * removes it from the address bar and history. Fragments never reach the
 * server; the token then lives only in this tab's session storage.
 */
function takeFragmentToken() {
  const m = /^#token=([A-Za-z0-9_\-.]+)$/.exec(location.hash);
  if (m?.[1]) {
    sessionStorage.setItem(TOKEN_KEY, m[1]);
    history.replaceState(history.state, "", location.pathname + location.search);
  }
}

/** claims decodes a JWT's payload for display (the server verifies it). */
function claims(token: string): { exp?: number; tenant?: string } {
  try {
    const part = token.split(".")[1] ?? "";
    const json = JSON.parse(atob(part.replace(/-/g, "+").replace(/_/g, "/")));
    return { exp: json.exp, tenant: json.app_metadata?.tenant_id };
  } catch {
    return {};
  }
}

const routes: [RegExp, Page, string][] = [
  [/^\/ui\/?$/, runsPage, "runs"],
  [/^\/ui\/runs\/(?<id>[0-9a-fA-F-]{36})$/, runPage, "runs"],
  [/^\/ui\/usage$/, usagePage, "usage"],
  [/^\/ui\/health$/, healthPage, "health"],
];

let stop: (() => void) | void = undefined;
let client: AgentstoreClient | null = null;

function signIn(message?: string) {
  if (typeof stop === "function") stop();
  stop = undefined;
  client?.close();
  client = null;
  const app = document.getElementById("app")!;
  const input = h("textarea", { id: "token", name: "token", rows: 4, required: true, autocomplete: "off", spellcheck: "false", "aria-describedby": "token-help" });
  const form = h(
    "form",
    { class: "signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in to the run viewer"),
    message ? h("p", { class: "error-box", role: "alert" }, h("strong", {}, "✕ "), message) : null,
    h("label", { for: "token" }, "Access token"),
    input,
    h("p", { id: "token-help", class: "muted" }, "Paste a Supabase access token (or a token from `agentstore token`). It is kept in this tab's session storage only and sent to the server in the Authorization header, never in an address."),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const tok = input.value.trim();
    if (!tok) return;
    sessionStorage.setItem(TOKEN_KEY, tok);
    start();
  });
  app.replaceChildren(h("main", { id: "main", tabindex: -1 }, form));
  document.title = "Sign in · agentstore";
  input.focus();
}

function start() {
  takeFragmentToken();
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return signIn();
  client?.close();
  const liveEl = h("span", { class: "live", role: "status", "aria-live": "polite" }, "");
  client = createClient({
    baseUrl: base,
    getToken: () => token,
    // The client reports a dropped socket through onError; the next event
    // or confirmed subscription says it is back (pages call ctx.live).
    realtime: { onError: () => ctx.live("connecting") },
  });
  const c = claims(token);
  const navLinks = [
    ["runs", "/ui/", "Runs"],
    ["usage", "/ui/usage", "Usage"],
    ["health", "/ui/health", "Health"],
  ].map(([key, href, label]) => h("a", { href: href!, "data-nav": key! }, label!));
  const signOut = h("button", { type: "button", class: "link" }, "Sign out");
  signOut.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn();
  });
  const header = h(
    "header",
    { class: "top" },
    h("a", { href: "/ui/", class: "brand" }, "agentstore"),
    h("nav", { "aria-label": "Main" }, ...navLinks),
    liveEl,
    h("span", { class: "who muted", title: c.tenant ?? "" }, c.tenant ? `tenant ${c.tenant.slice(0, 8)}` : ""),
    signOut,
  );
  const main = h("main", { id: "main", tabindex: -1 });
  document.getElementById("app")!.replaceChildren(header, main);

  const ctx: Ctx = {
    client,
    token,
    baseUrl: base,
    navigate(path: string) {
      history.pushState(null, "", path);
      route(true);
    },
    live(state) {
      liveEl.className = `live ${state}`;
      liveEl.dataset.state = state;
      liveEl.textContent = state === "live" ? "● Live" : state === "connecting" ? "○ Reconnecting…" : "";
    },
    failed(err) {
      if (err instanceof AgentstoreError && err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return signIn(`The server refused the token: ${err.message}`);
      }
      const msg = err instanceof AgentstoreError ? `${err.code}: ${err.message}` : String(err);
      main.prepend(h("p", { class: "error-box", role: "alert" }, h("strong", {}, "✕ Request failed: "), msg));
    },
  };

  function route(focus = false) {
    if (typeof stop === "function") stop();
    stop = undefined;
    main.replaceChildren();
    const path = location.pathname;
    for (const [re, page, nav] of routes) {
      const m = re.exec(path);
      if (!m) continue;
      for (const a of navLinks) {
        if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      stop = page(main, ctx, { ...(m.groups ?? {}) });
      if (focus) main.focus({ preventScroll: true });
      return;
    }
    main.append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/ui/" }, "Back to the runs")));
  }

  window.onpopstate = () => route(true);
  route();
}

// Links inside the app navigate without a reload (ordinary clicks only:
// a middle click or ctrl-click still opens a new tab).
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || a.origin !== location.origin || !a.pathname.startsWith("/ui") || a.pathname.startsWith("/ui/assets") || a.hash) return;
  e.preventDefault();
  history.pushState(null, "", a.pathname + a.search);
  window.dispatchEvent(new PopStateEvent("popstate"));
});

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#token=")) start();
});

start();

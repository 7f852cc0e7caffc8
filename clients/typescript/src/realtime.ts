// The realtime client: one WebSocket for every subscription of a client,
// reconnected with backoff, each subscription resumed from the last offset
// it saw (SPEC §5, docs/development/realtime-protocol.md).
import { backoff } from "./transport.ts";

/** The event frame of a channel, as the server sends it. */
export interface RealtimeEvent<D = unknown> {
  /** "runs" or "run:<uuid>". */
  channel: string;
  /** run.created, run.updated, step.appended, toolcall.recorded, or an event a client published. */
  event: string;
  /** The event's position in its channel, rising by one per event. */
  offset: number;
  /** The run, step or tool call as the REST API returns it, or a client event's payload. */
  data: D;
}

/** What onResync is told: the server could not replay the gap. */
export interface ResyncInfo {
  channel: string;
  /** The offset the subscription asked to resume after. */
  since: number;
  /** The channel's offset now; events after it will be delivered. */
  offset: number;
}

/** A refusal the server sent in an error frame, or a failure of the connection. */
export interface RealtimeError {
  code: string;
  message: string;
  /** The channel the refused frame was about, when it was about one. */
  channel?: string | undefined;
  retryAfterMs?: number | undefined;
}

/** The options of one subscription. */
export interface SubscribeOptions {
  /** Resume after this offset: events since then are replayed when the server's history still has them. */
  since?: number;
  /**
   * Called when events were missed and cannot be replayed (the server
   * answered `recovered: false`): refetch what the subscription shows over
   * REST. Events after `info.offset` keep coming.
   */
  onResync?: (info: ResyncInfo) => void;
  /** Called when the server refuses the subscription (NOT_FOUND for another tenant's run, say); it is then dropped. */
  onError?: (error: RealtimeError) => void;
}

/** A subscription, as subscribe returns it. */
export interface Subscription {
  /** Stops the events of this subscription. */
  unsubscribe(): void;
  /** Resolves once the server confirmed the subscription the first time. */
  readonly ready: Promise<void>;
  /** The offset of the last event delivered (or the channel's offset when subscribed), undefined before. */
  readonly offset: number | undefined;
}

/** The realtime client of {@link createClient}. */
export interface Realtime {
  /** Subscribes to a channel ("runs" or "run:<uuid>"); onEvent receives each event once, in offset order. */
  subscribe<D = unknown>(channel: string, onEvent: (event: RealtimeEvent<D>) => void, options?: SubscribeOptions): Subscription;
  /** Closes the socket; subscriptions end. */
  close(): void;
}

/** The WebSocket API this client needs: the browser's, Deno's, Node ≥ 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/**
 * A WebSocket constructor, such as globalThis.WebSocket or the `ws`
 * package's default export. The third argument carries X-Tenant-ID for a
 * service_role client; implementations that take no headers (browsers)
 * ignore it.
 */
export type WebSocketConstructor = new (url: string, protocols?: undefined, options?: { headers?: Record<string, string> }) => WebSocketLike;

/** Tuning of the realtime client; the defaults suit production. */
export interface RealtimeOptions {
  /** The first reconnect delay, doubled per failed attempt. Default 250 ms. */
  reconnectBaseMs?: number;
  /** The longest reconnect delay. Default 10,000 ms. */
  reconnectMaxMs?: number;
  /** Renew the token with an `auth` frame this long before it expires. Default 60,000 ms (a quarter of the token's life when that is shorter). */
  renewBeforeMs?: number;
  /** Send a ping after this long without a frame from the server. Default 25,000 ms. */
  pingIntervalMs?: number;
  /** Reconnect when a ping gets no answer within this long. Default 10,000 ms. */
  pongTimeoutMs?: number;
  /** Told about connection failures and refused `auth` frames. */
  onError?: (error: RealtimeError) => void;
}

/** Close codes of SPEC §5. */
export const CloseCodes = {
  normal: 1000,
  goingAway: 1001,
  slowConsumer: 1008,
  messageTooBig: 1009,
  resync: 1012,
  tokenExpired: 4001,
} as const;

const OPEN = 1;

interface Listener {
  onEvent: (e: RealtimeEvent<any>) => void;
  options: SubscribeOptions;
  resolveReady: () => void;
}

interface Channel {
  name: string;
  listeners: Set<Listener>;
  /** The last offset delivered; undefined until the first subscribed reply (or the caller's since). */
  offset: number | undefined;
  /** The ref of the subscribe in flight on the current socket, "" when subscribed. */
  pending: string;
  subscribed: boolean;
}

interface Settings {
  baseUrl: string;
  getToken: () => string | Promise<string>;
  tenantId?: string | undefined;
  WebSocket?: WebSocketConstructor | undefined;
  realtime?: RealtimeOptions | undefined;
}

/** tokenExpiry returns the exp claim of a JWT in ms since the epoch, or undefined. */
export function tokenExpiry(token: string): number | undefined {
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
    const claims = JSON.parse(atob(b64)) as { exp?: unknown };
    return typeof claims.exp === "number" ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** createRealtime returns the realtime client of a client. */
export function createRealtime(settings: Settings): Realtime {
  const opts = settings.realtime ?? {};
  const baseMs = opts.reconnectBaseMs ?? 250;
  const maxMs = opts.reconnectMaxMs ?? 10_000;
  const renewBefore = opts.renewBeforeMs ?? 60_000;
  const pingInterval = opts.pingIntervalMs ?? 25_000;
  const pongTimeout = opts.pongTimeoutMs ?? 10_000;

  const channels = new Map<string, Channel>();
  let socket: WebSocketLike | undefined;
  let connecting = false;
  let closed = false;
  let failures = 0;
  let refs = 0;
  let token = "";
  let reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  let renewTimer: ReturnType<typeof setTimeout> | undefined;
  let pingTimer: ReturnType<typeof setTimeout> | undefined;
  let pongTimer: ReturnType<typeof setTimeout> | undefined;

  const report = (e: RealtimeError): void => opts.onError?.(e);

  function wsUrl(tok: string): string {
    const u = new URL(settings.baseUrl.replace(/\/+$/, "") + "/v1/ws");
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    if (tok) u.searchParams.set("access_token", tok);
    return u.toString();
  }

  function send(frame: Record<string, unknown>): void {
    if (socket && socket.readyState === OPEN) socket.send(JSON.stringify(frame));
  }

  function nextRef(): string {
    refs += 1;
    return String(refs);
  }

  function sendSubscribe(ch: Channel): void {
    ch.pending = nextRef();
    ch.subscribed = false;
    const frame: Record<string, unknown> = { type: "subscribe", ref: ch.pending, channel: ch.name };
    if (ch.offset !== undefined) frame.since = ch.offset;
    send(frame);
  }

  function clearTimers(): void {
    for (const t of [reconnectTimer, renewTimer, pingTimer, pongTimer]) if (t !== undefined) clearTimeout(t);
    reconnectTimer = renewTimer = pingTimer = pongTimer = undefined;
  }

  function scheduleReconnect(immediate: boolean): void {
    if (closed || channels.size === 0 || reconnectTimer !== undefined) return;
    failures += 1;
    const delay = immediate && failures === 1 ? 0 : backoff(failures, baseMs, maxMs);
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      void connect();
    }, delay);
  }

  // Keepalive: after pingInterval without a frame, ping; no answer within
  // pongTimeout means a dead link (a half-open TCP connection), so reconnect.
  function armPing(ws: WebSocketLike): void {
    if (pingTimer !== undefined) clearTimeout(pingTimer);
    if (pongTimer !== undefined) clearTimeout(pongTimer);
    pongTimer = undefined;
    pingTimer = setTimeout(() => {
      if (socket !== ws) return;
      send({ type: "ping", ref: nextRef() });
      pongTimer = setTimeout(() => {
        if (socket === ws) ws.close(4000, "no pong");
      }, pongTimeout);
    }, pingInterval);
  }

  function scheduleRenewal(ws: WebSocketLike): void {
    if (renewTimer !== undefined) clearTimeout(renewTimer);
    renewTimer = undefined;
    const exp = tokenExpiry(token);
    if (exp === undefined) return;
    const left = exp - Date.now();
    const margin = Math.min(renewBefore, left / 4);
    renewTimer = setTimeout(() => void renew(ws, exp), Math.max(0, left - margin));
  }

  async function renew(ws: WebSocketLike, oldExp: number): Promise<void> {
    renewTimer = undefined;
    let fresh: string;
    try {
      fresh = await settings.getToken();
    } catch (err) {
      report({ code: "UNAUTHENTICATED", message: `getToken failed: ${String(err)}` });
      return;
    }
    if (socket !== ws || closed) return;
    const exp = tokenExpiry(fresh);
    if (fresh === token || exp === undefined || exp <= oldExp) {
      // getToken has nothing newer yet: ask again halfway to the expiry.
      const left = oldExp - Date.now();
      if (left > 1000) renewTimer = setTimeout(() => void renew(ws, oldExp), left / 2);
      return;
    }
    token = fresh;
    send({ type: "auth", ref: `auth-${nextRef()}`, token: fresh });
    scheduleRenewal(ws);
  }

  async function connect(): Promise<void> {
    if (closed || connecting || socket || channels.size === 0) return;
    connecting = true;
    try {
      const Ctor = settings.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!Ctor) {
        throw new Error("no WebSocket implementation: pass createClient({ WebSocket }) (for example the ws package's) on Node 20");
      }
      token = await settings.getToken();
      if (closed || channels.size === 0) return;
      const ws = settings.tenantId
        ? new Ctor(wsUrl(token), undefined, { headers: { "X-Tenant-ID": settings.tenantId } })
        : new Ctor(wsUrl(token));
      socket = ws;
      ws.onopen = () => {
        if (socket !== ws) return;
        for (const ch of channels.values()) sendSubscribe(ch);
        armPing(ws);
        scheduleRenewal(ws);
      };
      ws.onmessage = (ev: { data: unknown }) => {
        if (socket !== ws) return;
        armPing(ws);
        const text = typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data as ArrayBuffer);
        let frame: Record<string, any>;
        try {
          frame = JSON.parse(text) as Record<string, any>;
        } catch {
          return;
        }
        onFrame(frame);
      };
      ws.onerror = () => {
        // The close event follows and decides.
      };
      ws.onclose = (ev: { code: number; reason: string }) => {
        if (socket !== ws) return;
        socket = undefined;
        clearTimers();
        for (const ch of channels.values()) {
          ch.subscribed = false;
          ch.pending = "";
        }
        if (closed) return;
        // 4001: the token expired; 1001: the instance shuts down; 1012: it
        // may have missed events; 1008: we read too slowly. Each is answered
        // the same way: reconnect (with a fresh token) and resume from the
        // last offset; only the wait differs.
        const quick = ev.code === CloseCodes.tokenExpired || ev.code === CloseCodes.goingAway || ev.code === CloseCodes.resync;
        if (ev.code !== CloseCodes.normal && ev.code !== CloseCodes.goingAway) {
          report({ code: "DISCONNECTED", message: `connection closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})` });
        }
        scheduleReconnect(quick);
      };
    } catch (err) {
      report({ code: "UNAVAILABLE", message: err instanceof Error ? err.message : String(err) });
      scheduleReconnect(false);
    } finally {
      connecting = false;
    }
  }

  function channelOfRef(ref: string): Channel | undefined {
    for (const ch of channels.values()) if (ch.pending === ref) return ch;
    return undefined;
  }

  function onFrame(f: Record<string, any>): void {
    switch (f.type) {
      case "event": {
        const ch = channels.get(f.channel);
        if (!ch || typeof f.offset !== "number") return;
        if (ch.offset !== undefined && f.offset <= ch.offset) return; // already delivered
        ch.offset = f.offset;
        const e: RealtimeEvent = { channel: f.channel, event: f.event, offset: f.offset, data: f.data };
        for (const l of [...ch.listeners]) l.onEvent(e);
        return;
      }
      case "subscribed": {
        const ch = channelOfRef(f.ref);
        if (!ch) return;
        ch.pending = "";
        ch.subscribed = true;
        failures = 0;
        const since = ch.offset;
        if (since === undefined) {
          ch.offset = f.offset;
        } else if (f.recovered === false) {
          ch.offset = f.offset;
          for (const l of [...ch.listeners]) l.options.onResync?.({ channel: ch.name, since, offset: f.offset });
        }
        for (const l of ch.listeners) l.resolveReady();
        return;
      }
      case "pong":
      case "unsubscribed":
        return;
      case "error": {
        const ref = typeof f.ref === "string" ? f.ref : "";
        const err: RealtimeError = { code: f.code, message: f.message, retryAfterMs: f.retryAfterMs };
        const ch = ref ? channelOfRef(ref) : undefined;
        if (!ch) {
          report(err);
          return;
        }
        err.channel = ch.name;
        ch.pending = "";
        if (f.code === "UNAVAILABLE" || f.code === "INTERNAL" || f.code === "RATE_LIMITED") {
          // The server could not subscribe now: ask again after a while.
          const ws = socket;
          setTimeout(() => {
            if (socket === ws && channels.get(ch.name) === ch && !ch.subscribed && ch.pending === "") sendSubscribe(ch);
          }, f.retryAfterMs ?? backoff(1, baseMs * 4, maxMs));
          report(err);
          return;
        }
        channels.delete(ch.name);
        for (const l of ch.listeners) {
          l.resolveReady();
          l.options.onError?.(err);
        }
        if (!ch.listeners.size || ![...ch.listeners].some((l) => l.options.onError)) report(err);
        if (channels.size === 0) socket?.close(CloseCodes.normal, "no subscriptions");
        return;
      }
    }
  }

  function subscribe<D>(name: string, onEvent: (e: RealtimeEvent<D>) => void, options: SubscribeOptions = {}): Subscription {
    if (closed) throw new Error("the client is closed");
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    const listener: Listener = { onEvent: onEvent as (e: RealtimeEvent<any>) => void, options, resolveReady };
    let ch = channels.get(name);
    if (ch) {
      if (options.since !== undefined) {
        throw new Error(`already subscribed to ${name}: a second subscription to a channel cannot resume from its own offset`);
      }
      ch.listeners.add(listener);
      if (ch.subscribed) resolveReady();
    } else {
      ch = { name, listeners: new Set([listener]), offset: options.since, pending: "", subscribed: false };
      channels.set(name, ch);
      if (socket && socket.readyState === OPEN) sendSubscribe(ch);
      else void connect();
    }
    const channel = ch;
    return {
      ready,
      get offset() {
        return channel.offset;
      },
      unsubscribe() {
        if (!channel.listeners.delete(listener)) return;
        listener.resolveReady();
        if (channel.listeners.size > 0 || channels.get(name) !== channel) return;
        channels.delete(name);
        send({ type: "unsubscribe", ref: nextRef(), channel: name });
        if (channels.size === 0 && socket) {
          const ws = socket;
          socket = undefined;
          clearTimers();
          ws.close(CloseCodes.normal, "no subscriptions");
        }
      },
    };
  }

  function close(): void {
    closed = true;
    clearTimers();
    for (const ch of channels.values()) for (const l of ch.listeners) l.resolveReady();
    channels.clear();
    const ws = socket;
    socket = undefined;
    ws?.close(CloseCodes.normal, "client closed");
  }

  return { subscribe, close };
}

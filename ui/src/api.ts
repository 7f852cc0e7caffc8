// api.ts: a stand-in for @agentstore/client (clients/typescript, SPEC §14)
// until that package lands. It has the client's names and shapes for what
// the viewer calls (runs.list/get/iterate/stats, steps.list,
// toolCalls.list, usage.summary, health.get, realtime.subscribe, close),
// so that switching is a change of import. One extra the client lacks:
// steps.list takes { limit, cursor } and then returns one page
// (GET /v1/runs/{id}/steps?limit=&cursor=), see stepsPage.

/** A JSON value the API stores as given. */
export type AnyValue = unknown;
export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Run {
  id: string;
  tenantId: string;
  agentName: string;
  status: RunStatus;
  input: AnyValue;
  output: AnyValue;
  error: string | null;
  metadata: AnyValue;
  model: string | null;
  userId: string | null;
  parentRunId: string | null;
  startedAt: string | null;
  endedAt: string | null;
  createdAt: string;
  updatedAt: string;
  steps?: Step[];
  toolCalls?: ToolCall[];
}

export interface Step {
  id: string;
  runId: string;
  seq: number;
  type: string;
  name: string | null;
  status: string;
  input: AnyValue;
  output: AnyValue;
  error: string | null;
  startedAt: string | null;
  endedAt: string | null;
  createdAt: string;
}

export interface ToolCall {
  id: string;
  runId: string;
  stepId: string | null;
  toolName: string;
  arguments: AnyValue;
  result: AnyValue;
  status: "succeeded" | "failed";
  error: string | null;
  durationMs: number | null;
  startedAt: string | null;
  endedAt: string | null;
  createdAt: string;
}

export interface UsageSummary {
  key: string | null;
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  costUsd: number;
  runs: number;
}

export interface Health {
  id: string;
  component: string;
  status: "up" | "degraded" | "down";
  latencyMs: number | null;
  details: AnyValue;
  checkedAt: string;
}

export interface RunStats {
  key: string;
  runs: number;
}

export interface RunPage {
  data: Run[];
  nextCursor: string | null;
}

export interface RunFilter {
  status?: RunStatus | undefined;
  agentName?: string | undefined;
  parentRunId?: string | undefined;
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

/** The options of one request. */
export interface RequestOptions {
  signal?: AbortSignal;
}

/** Every non-2xx answer: the §4 error body. */
export class AgentstoreError extends Error {
  readonly status: number;
  readonly code: string;
  readonly requestId: string | undefined;
  readonly details: unknown;
  readonly retryAfterMs: number | undefined;
  constructor(status: number, body: { code?: string; message?: string; requestId?: string; details?: unknown; retryAfterMs?: number }) {
    super(body.message ?? `HTTP ${status}`);
    this.name = "AgentstoreError";
    this.status = status;
    this.code = body.code ?? (status >= 500 ? "INTERNAL" : "UNKNOWN");
    this.requestId = body.requestId;
    this.details = body.details;
    this.retryAfterMs = body.retryAfterMs;
  }
}

/** An event frame of a channel (§5). */
export interface RealtimeEvent<D = unknown> {
  channel: string;
  event: string;
  offset: number;
  data: D;
}

export interface ResyncInfo {
  channel: string;
  since: number;
  offset: number;
}

export interface RealtimeError {
  code: string;
  message: string;
  channel?: string | undefined;
}

export interface SubscribeOptions {
  since?: number;
  onResync?: (info: ResyncInfo) => void;
  onError?: (error: RealtimeError) => void;
}

export interface Subscription {
  unsubscribe(): void;
  readonly ready: Promise<void>;
  readonly offset: number | undefined;
}

export interface RealtimeOptions {
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  pingIntervalMs?: number;
  onError?: (error: RealtimeError) => void;
  /** Called when the socket is open again after a drop (not in @agentstore/client yet; the viewer also treats any event as a sign of life). */
  onOpen?: () => void;
}

export interface Realtime {
  subscribe<D = unknown>(channel: string, onEvent: (e: RealtimeEvent<D>) => void, options?: SubscribeOptions): Subscription;
  close(): void;
}

export interface ClientOptions {
  baseUrl: string;
  getToken: () => string | Promise<string>;
  realtime?: RealtimeOptions;
}

export interface AgentstoreClient {
  runs: {
    get(id: string, options?: RequestOptions & { include?: ("steps" | "toolCalls")[] }): Promise<Run>;
    list(filter?: RunFilter, options?: RequestOptions): Promise<RunPage>;
    iterate(filter?: Omit<RunFilter, "cursor">, options?: RequestOptions): AsyncIterable<Run>;
    stats(query?: { from?: string; to?: string; groupBy?: "status" | "agentName" }, options?: RequestOptions): Promise<RunStats[]>;
  };
  steps: {
    list(runId: string, options?: RequestOptions): Promise<Step[]>;
  };
  toolCalls: {
    list(runId: string, options?: RequestOptions): Promise<ToolCall[]>;
  };
  usage: {
    summary(query?: { from?: string; to?: string; groupBy?: "day" | "model" | "agentName" }, options?: RequestOptions): Promise<UsageSummary[]>;
  };
  health: {
    get(query?: { component?: string; from?: string; to?: string; limit?: number }, options?: RequestOptions): Promise<Health[]>;
  };
  realtime: Realtime;
  close(): void;
}

/** createClient returns a client of the API at options.baseUrl. */
export function createClient(options: ClientOptions): AgentstoreClient {
  const base = options.baseUrl.replace(/\/$/, "");
  async function get<T>(path: string, query?: Record<string, unknown>, o?: RequestOptions): Promise<T> {
    const u = new URL(base + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined || v === null || v === "") continue;
      u.searchParams.set(k, Array.isArray(v) ? v.join(",") : String(v));
    }
    const token = await options.getToken();
    const init: RequestInit = { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } };
    if (o?.signal) init.signal = o.signal;
    const res = await fetch(u, init);
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!res.ok) throw new AgentstoreError(res.status, (body ?? {}) as Record<string, never>);
    return body as T;
  }
  const seg = encodeURIComponent;
  const realtime = createRealtime(base, options.getToken, options.realtime ?? {});
  return {
    runs: {
      get: (id, o) => get<Run>(`/v1/runs/${seg(id)}`, { include: o?.include }, o),
      list: (filter, o) => get<RunPage>("/v1/runs", { ...filter }, o),
      async *iterate(filter, o) {
        let cursor: string | undefined;
        do {
          const page = await get<RunPage>("/v1/runs", { ...filter, cursor }, o);
          yield* page.data;
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
      },
      stats: async (q, o) => (await get<{ data: RunStats[] }>("/v1/runs/stats", q, o)).data,
    },
    steps: {
      list: async (runId, o) => (await get<{ data: Step[] }>(`/v1/runs/${seg(runId)}/steps`, undefined, o)).data,
    },
    toolCalls: {
      list: async (runId, o) => (await get<{ data: ToolCall[] }>(`/v1/runs/${seg(runId)}/tool-calls`, undefined, o)).data,
    },
    usage: {
      summary: async (q, o) => (await get<{ data: UsageSummary[] }>("/v1/usage/summary", q, o)).data,
    },
    health: {
      get: async (q, o) => (await get<{ data: Health[] }>("/v1/system-health", q, o)).data,
    },
    realtime,
    close: () => realtime.close(),
  };
}

/**
 * stepsPage reads one page of a run's steps by seq (GET
 * /v1/runs/{id}/steps?limit=&cursor=), which the published client does
 * not expose yet; the viewer reads large runs this way.
 */
export async function stepsPage(
  baseUrl: string,
  token: string,
  runId: string,
  limit: number,
  cursor?: string,
): Promise<{ data: Step[]; nextCursor: string | null }> {
  const u = new URL(`${baseUrl.replace(/\/$/, "")}/v1/runs/${encodeURIComponent(runId)}/steps`);
  u.searchParams.set("limit", String(limit));
  if (cursor) u.searchParams.set("cursor", cursor);
  const res = await fetch(u, { headers: { Authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new AgentstoreError(res.status, body);
  return body;
}

interface Listener {
  onEvent: (e: RealtimeEvent<any>) => void;
  options: SubscribeOptions;
  resolveReady: () => void;
}

interface Channel {
  name: string;
  listeners: Set<Listener>;
  offset: number | undefined;
  pending: string;
  subscribed: boolean;
}

/**
 * createRealtime is one WebSocket for every subscription: it reconnects
 * with backoff and resubscribes each channel with since = the last offset
 * it delivered, so that no event is missed or repeated while the server's
 * history covers the gap, and calls onResync when it does not.
 *
 * The token goes in the access_token query parameter: browsers cannot set
 * an Authorization header on a WebSocket, and the server authenticates
 * the handshake before the upgrade (no first-frame auth, no subprotocol).
 */
function createRealtime(base: string, getToken: () => string | Promise<string>, o: RealtimeOptions): Realtime {
  const channels = new Map<string, Channel>();
  let ws: WebSocket | null = null;
  let closed = false;
  let attempt = 0;
  let refs = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ping: ReturnType<typeof setInterval> | undefined;

  const send = (f: object) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(f));
  };
  const subscribeFrame = (c: Channel) => {
    c.pending = String(++refs);
    c.subscribed = false;
    const f: Record<string, unknown> = { type: "subscribe", ref: c.pending, channel: c.name };
    if (c.offset !== undefined) f.since = c.offset;
    send(f);
  };

  async function connect() {
    if (closed || ws) return;
    let token: string;
    try {
      token = await getToken();
    } catch (err) {
      o.onError?.({ code: "UNAUTHENTICATED", message: String(err) });
      return;
    }
    const u = new URL(base + "/v1/ws");
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("access_token", token);
    const sock = new WebSocket(u);
    ws = sock;
    sock.onopen = () => {
      attempt = 0;
      o.onOpen?.();
      for (const c of channels.values()) subscribeFrame(c);
      clearInterval(ping);
      ping = setInterval(() => send({ type: "ping", ref: String(++refs) }), o.pingIntervalMs ?? 25_000);
    };
    sock.onmessage = (m: MessageEvent) => {
      let f: any;
      try {
        f = JSON.parse(String(m.data));
      } catch {
        return;
      }
      if (f.type === "event") {
        const c = channels.get(f.channel);
        if (!c || !c.subscribed) return;
        if (c.offset !== undefined && f.offset <= c.offset) return;
        c.offset = f.offset;
        for (const l of c.listeners) l.onEvent({ channel: f.channel, event: f.event, offset: f.offset, data: f.data });
      } else if (f.type === "subscribed") {
        const c = channels.get(f.channel);
        if (!c || c.pending !== f.ref) return;
        const since = c.offset;
        c.pending = "";
        c.subscribed = true;
        if (f.recovered === false || since === undefined) {
          c.offset = f.offset;
          if (since !== undefined) for (const l of c.listeners) l.options.onResync?.({ channel: c.name, since, offset: f.offset });
        }
        for (const l of c.listeners) l.resolveReady();
      } else if (f.type === "error") {
        for (const c of channels.values()) {
          if (c.pending && c.pending === f.ref) {
            channels.delete(c.name);
            for (const l of c.listeners) l.options.onError?.({ code: f.code, message: f.message, channel: c.name });
          }
        }
      }
    };
    sock.onclose = (ev: CloseEvent) => {
      if (ws === sock) ws = null;
      clearInterval(ping);
      for (const c of channels.values()) c.subscribed = false;
      if (closed) return;
      o.onError?.({ code: "DISCONNECTED", message: `connection closed (${ev.code})` });
      if (channels.size === 0) return;
      const max = o.reconnectMaxMs ?? 10_000;
      const delay = Math.min(max, (o.reconnectBaseMs ?? 250) * 2 ** attempt++) * (0.5 + Math.random() / 2);
      timer = setTimeout(() => void connect(), delay);
    };
  }

  return {
    subscribe<D>(name: string, onEvent: (e: RealtimeEvent<D>) => void, options: SubscribeOptions = {}): Subscription {
      let c = channels.get(name);
      let resolveReady!: () => void;
      const ready = new Promise<void>((r) => (resolveReady = r));
      const l: Listener = { onEvent: onEvent as (e: RealtimeEvent<any>) => void, options, resolveReady };
      if (!c) {
        c = { name, listeners: new Set(), offset: options.since, pending: "", subscribed: false };
        channels.set(name, c);
        c.listeners.add(l);
        if (ws && ws.readyState === WebSocket.OPEN) subscribeFrame(c);
        else void connect();
      } else {
        c.listeners.add(l);
        if (c.subscribed) resolveReady();
      }
      const ch = c;
      return {
        ready,
        get offset() {
          return ch.offset;
        },
        unsubscribe() {
          ch.listeners.delete(l);
          if (ch.listeners.size === 0 && channels.get(name) === ch) {
            channels.delete(name);
            send({ type: "unsubscribe", ref: String(++refs), channel: name });
          }
        },
      };
    },
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(ping);
      ws?.close(1000);
      ws = null;
    },
  };
}

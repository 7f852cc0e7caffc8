// @agentstore/client: the agentstore API for TypeScript (SPEC §14). One
// small fetch wrapper (transport.ts), the generated types (openapi.ts,
// named in types.ts), a thin facade per resource (below) and the realtime
// client (realtime.ts).
import { createRealtime } from "./realtime.ts";
import type { Realtime, RealtimeOptions, WebSocketConstructor } from "./realtime.ts";
import { createTransport } from "./transport.ts";
import type { RetryOptions } from "./transport.ts";
import type {
  AuditLogPage,
  AuditLogQuery,
  CreateRunInput,
  Health,
  HealthInput,
  HealthQuery,
  Run,
  RunFilter,
  RunInclude,
  RunPage,
  RunStats,
  RunStatsQuery,
  Step,
  StepInput,
  ToolCall,
  ToolCallInput,
  UpdateRunInput,
  Usage,
  UsageInput,
  UsageSummary,
  UsageSummaryQuery,
} from "./types.ts";

export { AgentstoreError } from "./errors.ts";
export type { ErrorCode, ErrorDetail, AgentstoreErrorInit } from "./errors.ts";
export type { RetryOptions } from "./transport.ts";
export { CloseCodes } from "./realtime.ts";
export type {
  Realtime,
  RealtimeError,
  RealtimeEvent,
  RealtimeOptions,
  ResyncInfo,
  SubscribeOptions,
  Subscription,
  WebSocketConstructor,
  WebSocketLike,
} from "./realtime.ts";
export type * from "./types.ts";
export type { components, operations, paths } from "./openapi.ts";

/** The options of {@link createClient}. */
export interface ClientOptions {
  /** The service's base URL, such as https://agentstore.example.com (no /v1). */
  baseUrl: string;
  /**
   * Returns the bearer token; awaited before every request and every
   * WebSocket (re)connect, so it may refresh (a supabase-js session's
   * access_token, or a service key).
   */
  getToken: () => string | Promise<string>;
  /** Sent as X-Tenant-ID: the tenant a service_role token acts for. */
  tenantId?: string;
  /** The fetch to use; globalThis.fetch by default. */
  fetch?: typeof fetch;
  /** The WebSocket to use; globalThis.WebSocket by default (Node 20 has none: pass the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Retries of requests that are safe to repeat. */
  retry?: RetryOptions;
  /** Tuning of the realtime client. */
  realtime?: RealtimeOptions;
}

/** Options of one request. */
export interface RequestOptions {
  /** Aborts the request, and any wait before a retry. */
  signal?: AbortSignal;
}

/** Options of runs.create. */
export interface CreateRunOptions extends RequestOptions {
  /** Makes the create safe to retry: a replay returns the first result. Generated when absent, so runs.create is always retried safely. */
  idempotencyKey?: string;
}

/** Options of runs.get. */
export interface GetRunOptions extends RequestOptions {
  /** Embeds the run's steps and/or tool calls. */
  include?: RunInclude[];
}

/** The client of {@link createClient}. */
export interface AgentstoreClient {
  runs: {
    /** POST /v1/runs (with steps and tool calls in the same transaction, when given). Retried safely: it always carries an Idempotency-Key. */
    create(input: CreateRunInput, options?: CreateRunOptions): Promise<Run>;
    /** GET /v1/runs/{id}. */
    get(id: string, options?: GetRunOptions): Promise<Run>;
    /** GET /v1/runs: one page, newest first. */
    list(filter?: RunFilter, options?: RequestOptions): Promise<RunPage>;
    /** GET /v1/runs, page after page: every run that matches, newest first. */
    iterate(filter?: Omit<RunFilter, "cursor">, options?: RequestOptions): AsyncIterable<Run>;
    /** PATCH /v1/runs/{id}. Not retried. */
    update(id: string, patch: UpdateRunInput, options?: RequestOptions): Promise<Run>;
    /** GET /v1/runs/stats. */
    stats(query?: RunStatsQuery, options?: RequestOptions): Promise<RunStats[]>;
  };
  steps: {
    /** POST /v1/runs/{id}/steps: one step (returns it) or several (returns them, in order). Not retried. */
    append(runId: string, step: StepInput, options?: RequestOptions): Promise<Step>;
    append(runId: string, steps: StepInput[], options?: RequestOptions): Promise<Step[]>;
    /** GET /v1/runs/{id}/steps, by seq. */
    list(runId: string, options?: RequestOptions): Promise<Step[]>;
  };
  toolCalls: {
    /** POST /v1/runs/{id}/tool-calls: one call (returns it) or several (returns them). Not retried. */
    record(runId: string, call: ToolCallInput, options?: RequestOptions): Promise<ToolCall>;
    record(runId: string, calls: ToolCallInput[], options?: RequestOptions): Promise<ToolCall[]>;
    /** GET /v1/runs/{id}/tool-calls, by createdAt. */
    list(runId: string, options?: RequestOptions): Promise<ToolCall[]>;
  };
  usage: {
    /** POST /v1/usage. Not retried. */
    record(input: UsageInput, options?: RequestOptions): Promise<Usage>;
    /** GET /v1/usage/summary. */
    summary(query?: UsageSummaryQuery, options?: RequestOptions): Promise<UsageSummary[]>;
  };
  audit: {
    /** GET /v1/audit-logs: one page, newest first. */
    list(query?: AuditLogQuery, options?: RequestOptions): Promise<AuditLogPage>;
  };
  health: {
    /** GET /v1/system-health: the latest check per component, or one component's history. */
    get(query?: HealthQuery, options?: RequestOptions): Promise<Health[]>;
    /** POST /v1/system-health (service_role only). Not retried. */
    record(input: HealthInput, options?: RequestOptions): Promise<Health>;
  };
  /** The realtime feed over one WebSocket. */
  realtime: Realtime;
  /** Closes the realtime socket. */
  close(): void;
}

/** newIdempotencyKey returns a random UUID, in every runtime (crypto.randomUUID needs a secure context in browsers). */
function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const seg = encodeURIComponent;

/** createClient returns a client of the agentstore API at options.baseUrl. */
export function createClient(options: ClientOptions): AgentstoreClient {
  const t = createTransport(options);
  const get = <T>(path: string, query?: Record<string, unknown>, o?: RequestOptions): Promise<T> =>
    t.request<T>({ method: "GET", path, query, safe: true, signal: o?.signal });
  const post = <T>(path: string, body: unknown, o?: RequestOptions, headers?: Record<string, string>): Promise<T> =>
    t.request<T>({ method: "POST", path, body, headers, safe: headers?.["Idempotency-Key"] !== undefined, signal: o?.signal });

  const runs: AgentstoreClient["runs"] = {
    create: (input, o) => post<Run>("/v1/runs", input, o, { "Idempotency-Key": o?.idempotencyKey ?? newIdempotencyKey() }),
    get: (id, o) => get<Run>(`/v1/runs/${seg(id)}`, { include: o?.include }, o),
    list: (filter, o) => get<RunPage>("/v1/runs", filter, o),
    async *iterate(filter, o) {
      let cursor: string | undefined;
      do {
        const page = await get<RunPage>("/v1/runs", { ...filter, cursor }, o);
        yield* page.data;
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    },
    update: (id, patch, o) => t.request<Run>({ method: "PATCH", path: `/v1/runs/${seg(id)}`, body: patch, safe: false, signal: o?.signal }),
    stats: async (query, o) => (await get<{ data: RunStats[] }>("/v1/runs/stats", query, o)).data,
  };

  const steps: AgentstoreClient["steps"] = {
    append: (async (runId: string, input: StepInput | StepInput[], o?: RequestOptions) => {
      const path = `/v1/runs/${seg(runId)}/steps`;
      if (Array.isArray(input)) return (await post<{ data: Step[] }>(path, { steps: input }, o)).data;
      return post<Step>(path, input, o);
    }) as AgentstoreClient["steps"]["append"],
    list: async (runId, o) => (await get<{ data: Step[] }>(`/v1/runs/${seg(runId)}/steps`, undefined, o)).data,
  };

  const toolCalls: AgentstoreClient["toolCalls"] = {
    record: (async (runId: string, input: ToolCallInput | ToolCallInput[], o?: RequestOptions) => {
      const path = `/v1/runs/${seg(runId)}/tool-calls`;
      if (Array.isArray(input)) return (await post<{ data: ToolCall[] }>(path, { toolCalls: input }, o)).data;
      return post<ToolCall>(path, input, o);
    }) as AgentstoreClient["toolCalls"]["record"],
    list: async (runId, o) => (await get<{ data: ToolCall[] }>(`/v1/runs/${seg(runId)}/tool-calls`, undefined, o)).data,
  };

  const usage: AgentstoreClient["usage"] = {
    record: (input, o) => post<Usage>("/v1/usage", input, o),
    summary: async (query, o) => (await get<{ data: UsageSummary[] }>("/v1/usage/summary", query, o)).data,
  };

  const audit: AgentstoreClient["audit"] = {
    list: (query, o) => get<AuditLogPage>("/v1/audit-logs", query, o),
  };

  const health: AgentstoreClient["health"] = {
    get: async (query, o) => (await get<{ data: Health[] }>("/v1/system-health", query, o)).data,
    record: (input, o) => post<Health>("/v1/system-health", input, o),
  };

  const realtime = createRealtime(options);
  return { runs, steps, toolCalls, usage, audit, health, realtime, close: () => realtime.close() };
}

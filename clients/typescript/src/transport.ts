import { AgentstoreError, fromResponse } from "./errors.ts";

/** How requests that are safe to repeat are retried. */
export interface RetryOptions {
  /** Attempts in all, the first included (1 = no retry). Default 3. */
  maxAttempts?: number;
  /** The first backoff after a 503 or a network error, doubled on each further attempt. Default 250 ms. */
  baseDelayMs?: number;
  /** The longest backoff (before jitter). Default 5,000 ms. */
  maxDelayMs?: number;
  /** A 429 whose Retry-After is longer than this is thrown at once instead of waited for. Default 60,000 ms. */
  maxRetryAfterMs?: number;
}

/** The options of {@link createClient} the transport uses. */
export interface TransportOptions {
  baseUrl: string;
  getToken: () => string | Promise<string>;
  tenantId?: string | undefined;
  fetch?: typeof fetch | undefined;
  retry?: RetryOptions | undefined;
}

/** One request. */
export interface Call {
  method: "GET" | "POST" | "PATCH";
  path: string;
  query?: Record<string, unknown> | undefined;
  body?: unknown;
  headers?: Record<string, string> | undefined;
  /**
   * Safe to send again: a GET, or a create carrying an Idempotency-Key.
   * Only these are retried.
   */
  safe: boolean;
  signal?: AbortSignal | undefined;
}

/** Transport sends requests with the token, tenant and retries of a client. */
export interface Transport {
  request<T>(call: Call): Promise<T>;
  readonly baseUrl: string;
  readonly options: TransportOptions;
}

/** sleep waits ms, or rejects when signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** backoff is the delay before attempt n+1 (n ≥ 1): exponential, capped, with full jitter. */
export function backoff(n: number, baseMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (n - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

/** encodeQuery turns a filter object into a query string, leaving out undefined and null values. */
export function encodeQuery(query: Record<string, unknown> | undefined): string {
  if (!query) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (Array.isArray(v)) {
      if (v.length > 0) p.set(k, v.join(","));
    } else if (v instanceof Date) {
      p.set(k, v.toISOString());
    } else {
      p.set(k, String(v));
    }
  }
  const s = p.toString();
  return s === "" ? "" : `?${s}`;
}

function isNetworkError(err: unknown): boolean {
  // fetch rejects with a TypeError when no response arrives (refused, reset, DNS).
  return err instanceof TypeError;
}

/** createTransport returns the transport of a client. */
export function createTransport(options: TransportOptions): Transport {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const maxAttempts = Math.max(1, Math.floor(options.retry?.maxAttempts ?? 3));
  const baseDelay = options.retry?.baseDelayMs ?? 250;
  const maxDelay = options.retry?.maxDelayMs ?? 5000;
  const maxRetryAfter = options.retry?.maxRetryAfterMs ?? 60_000;

  async function attempt(call: Call): Promise<Response> {
    const token = await options.getToken();
    const headers: Record<string, string> = { Accept: "application/json", ...call.headers };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.tenantId) headers["X-Tenant-ID"] = options.tenantId;
    let body: string | undefined;
    if (call.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(call.body);
    }
    const init: RequestInit = { method: call.method, headers };
    if (body !== undefined) init.body = body;
    if (call.signal) init.signal = call.signal;
    return doFetch(baseUrl + call.path + encodeQuery(call.query), init);
  }

  async function request<T>(call: Call): Promise<T> {
    for (let n = 1; ; n++) {
      const last = !call.safe || n >= maxAttempts;
      let res: Response;
      try {
        res = await attempt(call);
      } catch (err) {
        if (call.signal?.aborted || !isNetworkError(err)) throw err;
        if (last) {
          throw new AgentstoreError({
            status: 0,
            code: "NETWORK_ERROR",
            message: `no response from ${baseUrl}: ${err instanceof Error ? err.message : String(err)}`,
            cause: err,
          });
        }
        await sleep(backoff(n, baseDelay, maxDelay), call.signal);
        continue;
      }
      if (res.ok) {
        if (res.status === 204) return undefined as T;
        return (await res.json()) as T;
      }
      const error = await fromResponse(res);
      if (last) throw error;
      if (res.status === 429) {
        const wait = error.retryAfterMs ?? backoff(n, baseDelay, maxDelay);
        if (wait > maxRetryAfter) throw error;
        // A little jitter so that callers throttled together do not return together.
        await sleep(wait + Math.random() * Math.min(250, wait / 10), call.signal);
        continue;
      }
      if (res.status === 503) {
        await sleep(backoff(n, baseDelay, maxDelay), call.signal);
        continue;
      }
      throw error;
    }
  }

  return { request, baseUrl, options };
}

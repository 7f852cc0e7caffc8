/**
 * The error codes of the API (SPEC §4), plus the client's own
 * `NETWORK_ERROR` for a request that got no HTTP response at all.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "CONFLICT"
  | "PAYLOAD_TOO_LARGE"
  | "RATE_LIMITED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "NETWORK_ERROR";

/** One problem of a rejected request: the JSON path of the field as the caller wrote it, and what is wrong. */
export interface ErrorDetail {
  field: string;
  message: string;
}

/** What {@link AgentstoreError} is built from. */
export interface AgentstoreErrorInit {
  status: number;
  code: ErrorCode;
  message: string;
  requestId?: string | undefined;
  details?: ErrorDetail[] | undefined;
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

const codeOfStatus: Record<number, ErrorCode> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  429: "RATE_LIMITED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

/**
 * AgentstoreError is thrown for every response that is not 2xx (with the
 * API's error body) and for a request that got no response after its
 * retries (`status` 0, `code` `NETWORK_ERROR`, the failure in `cause`).
 */
export class AgentstoreError extends Error {
  /** The HTTP status; 0 when no response arrived. */
  readonly status: number;
  /** The API's stable error code. */
  readonly code: ErrorCode;
  /** The request id the server logged the request under (X-Request-ID). */
  readonly requestId: string | undefined;
  /** The per-field problems of an INVALID_ARGUMENT error; empty otherwise. */
  readonly details: ErrorDetail[];
  /** How long to wait before retrying, on RATE_LIMITED. */
  readonly retryAfterMs: number | undefined;

  constructor(init: AgentstoreErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "AgentstoreError";
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.details = init.details ?? [];
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** fromResponse builds the error of a non-2xx response from its body and headers. */
export async function fromResponse(res: Response): Promise<AgentstoreError> {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = await res.json();
    if (parsed !== null && typeof parsed === "object") body = parsed as Record<string, unknown>;
  } catch {
    // Not JSON (a proxy's page, say): the status alone speaks.
  }
  const code = typeof body.code === "string" ? (body.code as ErrorCode) : (codeOfStatus[res.status] ?? (res.status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT"));
  const message = typeof body.message === "string" ? body.message : `HTTP ${res.status}`;
  const requestId = typeof body.requestId === "string" ? body.requestId : (res.headers.get("X-Request-ID") ?? undefined);
  const details = Array.isArray(body.details) ? (body.details as ErrorDetail[]) : undefined;
  let retryAfterMs = typeof body.retryAfterMs === "number" ? body.retryAfterMs : undefined;
  if (retryAfterMs === undefined) {
    const h = res.headers.get("Retry-After");
    if (h !== null && /^\d+$/.test(h.trim())) retryAfterMs = Number(h.trim()) * 1000;
  }
  return new AgentstoreError({ status: res.status, code, message, requestId, details, retryAfterMs });
}

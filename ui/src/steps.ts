// steps.ts: one page of a run's steps (GET /v1/runs/{id}/steps?limit=&cursor=),
// which @agentstore/client does not expose yet (its steps.list reads every
// step at once); the viewer reads large runs page by page with it.
import { AgentstoreError } from "../../clients/typescript/src/index.ts";
import type { Step } from "../../clients/typescript/src/index.ts";

/** StepPage is one page of steps and the cursor of the next (null: none yet). */
export interface StepPage {
  data: Step[];
  nextCursor: string | null;
}

/** stepsPage reads at most limit steps of runId by seq, after cursor. */
export async function stepsPage(baseUrl: string, token: string, runId: string, limit: number, cursor?: string): Promise<StepPage> {
  const u = new URL(`${baseUrl.replace(/\/$/, "")}/v1/runs/${encodeURIComponent(runId)}/steps`);
  u.searchParams.set("limit", String(limit));
  if (cursor) u.searchParams.set("cursor", cursor);
  const res = await fetch(u, { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    throw new AgentstoreError({
      status: res.status,
      code: body.code ?? "INTERNAL",
      message: body.message ?? `HTTP ${res.status}`,
      requestId: body.requestId ?? res.headers.get("X-Request-ID") ?? undefined,
      details: body.details,
    });
  }
  return body as StepPage;
}

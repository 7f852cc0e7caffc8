// Typed usage of @agentstore/client, type-checked by `npm run typecheck`
// (make ts-test). The lines under @ts-expect-error must NOT compile: if
// one ever does, tsc fails on the unused directive.
import WebSocket from "ws";
import { createClient, AgentstoreError, type Run, type RealtimeEvent, type Step, type ToolCall } from "@agentstore/client";

const client = createClient({
  baseUrl: "http://127.0.0.1:8080",
  getToken: async () => process.env.AGENTSTORE_TOKEN ?? "",
  WebSocket,
  retry: { maxAttempts: 5 },
});

export async function example(): Promise<void> {
  const run: Run = await client.runs.create(
    { agentName: "planner", input: { goal: "book a flight" }, steps: [{ type: "llm" }] },
    { idempotencyKey: "job-42" },
  );
  const withSteps = await client.runs.get(run.id, { include: ["steps", "toolCalls"] });
  const firstSeq: number | undefined = withSteps.steps?.[0]?.seq;
  void firstSeq;

  const one: Step = await client.steps.append(run.id, { type: "tool", name: "search" });
  const many: Step[] = await client.steps.append(run.id, [{ type: "llm" }, { type: "message" }]);
  const call: ToolCall = await client.toolCalls.record(run.id, { toolName: "search", status: "succeeded", stepId: one.id });
  const calls: ToolCall[] = await client.toolCalls.record(run.id, [{ toolName: "a", status: "failed", error: "x" }]);
  void many, call, calls;

  await client.runs.update(run.id, { status: "succeeded", output: { booked: true } });
  const page = await client.runs.list({ status: "failed", limit: 20 });
  const next: string | null = page.nextCursor;
  void next;
  for await (const r of client.runs.iterate({ agentName: "planner" })) void r.endedAt;
  const stats = await client.runs.stats({ groupBy: "agentName" });
  void stats[0]?.p95DurationMs;
  await client.usage.record({ runId: run.id, model: "gpt-4o", inputTokens: 10, outputTokens: 2, costUsd: 0.01 });
  const days = await client.usage.summary({ groupBy: "day" });
  void days[0]?.costUsd;
  const audit = await client.audit.list({ resourceType: "run", resourceId: run.id });
  void audit.data[0]?.action;
  const health = await client.health.get({ component: "openai" });
  void health[0]?.status;

  const sub = client.realtime.subscribe<Run>(`run:${run.id}`, (e: RealtimeEvent<Run>) => void e.data.status, {
    since: 0,
    onResync: ({ offset }) => void offset,
  });
  sub.unsubscribe();

  try {
    await client.runs.get("00000000-0000-0000-0000-000000000000");
  } catch (err) {
    if (err instanceof AgentstoreError && err.code === "NOT_FOUND") void err.requestId;
  }

  // A wrong field type does not compile.
  // @ts-expect-error status is a RunStatus, not a number
  await client.runs.update(run.id, { status: 3 });
  // @ts-expect-error the legacy status spelling is gone
  await client.runs.create({ agentName: "x", status: "pending" });
  // @ts-expect-error legacy column names are not fields: step_index is seq
  await client.steps.append(run.id, { type: "llm", step_index: 1 });
  // @ts-expect-error include takes the names steps and toolCalls only
  await client.runs.get(run.id, { include: ["agent_steps"] });
  // @ts-expect-error one step returns one Step, not an array
  const wrong: Step[] = await client.steps.append(run.id, { type: "llm" });
  void wrong;
}

// The API's shapes, named: every one comes from the generated src/openapi.ts
// (make ts-generate), so that they cannot drift from the server.
import type { components, operations } from "./openapi.ts";

type Schemas = components["schemas"];
type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;

/** A JSON value the API stores as given (run input and output, metadata, step input and output, tool arguments and results). */
export type AnyValue = Schemas["AnyValue"];
/** The status of a run: queued → running → succeeded | failed | cancelled. */
export type RunStatus = Schemas["RunStatus"];
/** The status of a step. */
export type StepStatus = Schemas["StepStatus"];
/** The status of a tool call. */
export type ToolCallStatus = Schemas["ToolCallStatus"];
/** The status of a component's health check. */
export type HealthStatus = Schemas["HealthStatus"];

/** An agent run. */
export type Run = Schemas["Run"];
/** A step of a run. */
export type Step = Schemas["Step"];
/** A tool call of a run. */
export type ToolCall = Schemas["ToolCall"];
/** An audit log row. */
export type AuditLog = Schemas["AuditLog"];
/** A usage (billing) row. */
export type Usage = Schemas["Usage"];
/** A component health check. */
export type Health = Schemas["Health"];
/** One group of GET /v1/runs/stats. */
export type RunStats = Schemas["RunStats"];
/** One group of GET /v1/usage/summary. */
export type UsageSummary = Schemas["UsageSummary"];
/** A page of runs. */
export type RunPage = Schemas["RunPage"];
/** A page of audit log rows. */
export type AuditLogPage = Schemas["AuditLogPage"];

/** The body of runs.create. */
export type CreateRunInput = Schemas["CreateRunRequest"];
/** The body of runs.update. */
export type UpdateRunInput = Schemas["PatchRunRequest"];
/** One step to append. */
export type StepInput = Schemas["StepInput"];
/** One tool call to record. */
export type ToolCallInput = Schemas["ToolCallInput"];
/** The body of usage.record. */
export type UsageInput = Schemas["UsageRequest"];
/** The body of health.record. */
export type HealthInput = Schemas["HealthRequest"];

/** The filter of runs.list and runs.iterate. */
export type RunFilter = Query<"listRuns">;
/** The query of runs.stats. */
export type RunStatsQuery = Query<"runStats">;
/** The query of usage.summary. */
export type UsageSummaryQuery = Query<"usageSummary">;
/** The query of audit.list. */
export type AuditLogQuery = Query<"listAuditLogs">;
/** The query of health.get. */
export type HealthQuery = Query<"getSystemHealth">;
/** What runs.get may embed. */
export type RunInclude = "steps" | "toolCalls";

SET LOCAL lock_timeout = '5s';
-- Create "erasures" table
CREATE TABLE "erasures" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "user_id" uuid NOT NULL, "status" character varying NOT NULL DEFAULT 'pending', "runs" bigint NOT NULL DEFAULT 0, "steps" bigint NOT NULL DEFAULT 0, "tool_calls" bigint NOT NULL DEFAULT 0, "attempts" bigint NOT NULL DEFAULT 0, "error" character varying NULL, "actor_id" character varying NULL, "actor_role" character varying NOT NULL, "request_id" character varying NULL, "updated_at" timestamptz NOT NULL, "finished_at" timestamptz NULL, PRIMARY KEY ("id"));
-- Create index "erasure_status_created_at" to table: "erasures"
CREATE INDEX "erasure_status_created_at" ON "erasures" ("status", "created_at");
-- Create index "erasure_tenant_id_user_id" to table: "erasures"
CREATE INDEX "erasure_tenant_id_user_id" ON "erasures" ("tenant_id", "user_id");
-- Create "run_removals" table
CREATE TABLE "run_removals" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "hour" timestamptz NOT NULL, "agent_name" character varying NOT NULL, "status" character varying NOT NULL, "reason" character varying NOT NULL, "runs" bigint NOT NULL DEFAULT 0, "timed_runs" bigint NOT NULL DEFAULT 0, "duration_ms_sum" double precision NOT NULL DEFAULT 0, "steps" bigint NOT NULL DEFAULT 0, "tool_calls" bigint NOT NULL DEFAULT 0, "failed_tool_calls" bigint NOT NULL DEFAULT 0, "usage_rows" bigint NOT NULL DEFAULT 0, "input_tokens" bigint NOT NULL DEFAULT 0, "output_tokens" bigint NOT NULL DEFAULT 0, "total_tokens" bigint NOT NULL DEFAULT 0, "cost_usd" numeric(18,6) NOT NULL DEFAULT 0, "updated_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "runremoval_tenant_id_hour_agent_name_status_reason" to table: "run_removals"
CREATE UNIQUE INDEX "runremoval_tenant_id_hour_agent_name_status_reason" ON "run_removals" ("tenant_id", "hour", "agent_name", "status", "reason");

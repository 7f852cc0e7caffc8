-- Create "agent_runs" table
CREATE TABLE "agent_runs" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "agent_name" character varying NOT NULL, "status" character varying NOT NULL DEFAULT 'queued', "input" jsonb NULL, "output" jsonb NULL, "error" character varying NULL, "metadata" jsonb NULL, "model" character varying NULL, "user_id" uuid NULL, "started_at" timestamptz NULL, "ended_at" timestamptz NULL, "updated_at" timestamptz NOT NULL, "parent_run_id" uuid NULL, PRIMARY KEY ("id"), CONSTRAINT "agent_runs_agent_runs_children" FOREIGN KEY ("parent_run_id") REFERENCES "agent_runs" ("id") ON UPDATE NO ACTION ON DELETE SET NULL);
-- Create index "agentrun_parent_run_id" to table: "agent_runs"
CREATE INDEX "agentrun_parent_run_id" ON "agent_runs" ("parent_run_id");
-- Create index "agentrun_tenant_id_agent_name_created_at" to table: "agent_runs"
CREATE INDEX "agentrun_tenant_id_agent_name_created_at" ON "agent_runs" ("tenant_id", "agent_name", "created_at");
-- Create index "agentrun_tenant_id_created_at" to table: "agent_runs"
CREATE INDEX "agentrun_tenant_id_created_at" ON "agent_runs" ("tenant_id", "created_at");
-- Create index "agentrun_tenant_id_status_created_at" to table: "agent_runs"
CREATE INDEX "agentrun_tenant_id_status_created_at" ON "agent_runs" ("tenant_id", "status", "created_at");
-- Create "audit_logs" table
CREATE TABLE "audit_logs" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "actor_id" character varying NULL, "actor_role" character varying NOT NULL, "action" character varying NOT NULL, "resource_type" character varying NOT NULL, "resource_id" character varying NOT NULL, "request_id" character varying NULL, "ip" character varying NULL, "user_agent" character varying NULL, "changes" jsonb NULL, PRIMARY KEY ("id"));
-- Create index "auditlog_tenant_id_created_at" to table: "audit_logs"
CREATE INDEX "auditlog_tenant_id_created_at" ON "audit_logs" ("tenant_id", "created_at");
-- Create index "auditlog_tenant_id_resource_type_resource_id" to table: "audit_logs"
CREATE INDEX "auditlog_tenant_id_resource_type_resource_id" ON "audit_logs" ("tenant_id", "resource_type", "resource_id");
-- Create "system_health" table
CREATE TABLE "system_health" ("id" uuid NOT NULL, "component" character varying NOT NULL, "status" character varying NOT NULL, "latency_ms" bigint NULL, "details" jsonb NULL, "checked_at" timestamptz NOT NULL, PRIMARY KEY ("id"));
-- Create index "systemhealth_component_checked_at" to table: "system_health"
CREATE INDEX "systemhealth_component_checked_at" ON "system_health" ("component", "checked_at");
-- Create "agent_steps" table
CREATE TABLE "agent_steps" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "seq" bigint NOT NULL, "type" character varying NOT NULL, "name" character varying NULL, "status" character varying NOT NULL DEFAULT 'succeeded', "input" jsonb NULL, "output" jsonb NULL, "error" character varying NULL, "started_at" timestamptz NULL, "ended_at" timestamptz NULL, "run_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "agent_steps_agent_runs_steps" FOREIGN KEY ("run_id") REFERENCES "agent_runs" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "agentstep_run_id_seq" to table: "agent_steps"
CREATE UNIQUE INDEX "agentstep_run_id_seq" ON "agent_steps" ("run_id", "seq");
-- Create "tool_calls" table
CREATE TABLE "tool_calls" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "tool_name" character varying NOT NULL, "arguments" jsonb NULL, "result" jsonb NULL, "status" character varying NOT NULL, "error" character varying NULL, "duration_ms" bigint NULL, "started_at" timestamptz NULL, "ended_at" timestamptz NULL, "run_id" uuid NOT NULL, "step_id" uuid NULL, PRIMARY KEY ("id"), CONSTRAINT "tool_calls_agent_runs_tool_calls" FOREIGN KEY ("run_id") REFERENCES "agent_runs" ("id") ON UPDATE NO ACTION ON DELETE CASCADE, CONSTRAINT "tool_calls_agent_steps_tool_calls" FOREIGN KEY ("step_id") REFERENCES "agent_steps" ("id") ON UPDATE NO ACTION ON DELETE SET NULL);
-- Create index "toolcall_run_id_created_at" to table: "tool_calls"
CREATE INDEX "toolcall_run_id_created_at" ON "tool_calls" ("run_id", "created_at");
-- Create index "toolcall_step_id" to table: "tool_calls"
CREATE INDEX "toolcall_step_id" ON "tool_calls" ("step_id");
-- Create index "toolcall_tenant_id_created_at" to table: "tool_calls"
CREATE INDEX "toolcall_tenant_id_created_at" ON "tool_calls" ("tenant_id", "created_at");
-- Create "usage_metrics" table
CREATE TABLE "usage_metrics" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "model" character varying NOT NULL, "input_tokens" bigint NOT NULL DEFAULT 0, "output_tokens" bigint NOT NULL DEFAULT 0, "cached_input_tokens" bigint NOT NULL DEFAULT 0, "total_tokens" bigint NOT NULL DEFAULT 0, "cost_usd" numeric(18,6) NOT NULL DEFAULT 0, "recorded_at" timestamptz NOT NULL, "run_id" uuid NULL, PRIMARY KEY ("id"), CONSTRAINT "usage_metrics_agent_runs_usage" FOREIGN KEY ("run_id") REFERENCES "agent_runs" ("id") ON UPDATE NO ACTION ON DELETE SET NULL);
-- Create index "usagemetric_run_id" to table: "usage_metrics"
CREATE INDEX "usagemetric_run_id" ON "usage_metrics" ("run_id");
-- Create index "usagemetric_tenant_id_recorded_at" to table: "usage_metrics"
CREATE INDEX "usagemetric_tenant_id_recorded_at" ON "usage_metrics" ("tenant_id", "recorded_at");

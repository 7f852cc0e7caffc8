-- Hand-written (ent does not model row-level security): the policies that
-- DB_TENANT_RLS=on relies on. Each tenant-scoped table admits only the rows
-- of the tenant named by the transaction-local setting app.tenant_id, which
-- the service sets with set_config('app.tenant_id', <tenant>, true) as the
-- first statement of every transaction; with no tenant set, no tenant row is
-- visible or writable. system_health is global: everyone reads and writes it.
-- Without a tenant, expired idempotency keys (older than store.IdempotencyTTL,
-- 24 hours) can be read and deleted, so the system viewer can prune them
-- (a DELETE with a WHERE clause needs a SELECT policy too).
-- FORCE binds the table owner too. Superusers and BYPASSRLS roles (Supabase's
-- postgres) are never bound, so with DB_TENANT_RLS=off the service keeps
-- working as the owner; with it on, the service connects as a role that is
-- neither (see agentstore_app in docs).

SET LOCAL lock_timeout = '5s';
-- agent_runs
ALTER TABLE "agent_runs" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "agent_runs" FORCE ROW LEVEL SECURITY;
CREATE POLICY "agent_runs_tenant" ON "agent_runs"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- agent_steps
ALTER TABLE "agent_steps" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "agent_steps" FORCE ROW LEVEL SECURITY;
CREATE POLICY "agent_steps_tenant" ON "agent_steps"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- tool_calls
ALTER TABLE "tool_calls" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "tool_calls" FORCE ROW LEVEL SECURITY;
CREATE POLICY "tool_calls_tenant" ON "tool_calls"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- audit_logs
ALTER TABLE "audit_logs" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "audit_logs" FORCE ROW LEVEL SECURITY;
CREATE POLICY "audit_logs_tenant" ON "audit_logs"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- usage_metrics
ALTER TABLE "usage_metrics" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_metrics" FORCE ROW LEVEL SECURITY;
CREATE POLICY "usage_metrics_tenant" ON "usage_metrics"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- idempotency_keys
ALTER TABLE "idempotency_keys" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "idempotency_keys" FORCE ROW LEVEL SECURITY;
CREATE POLICY "idempotency_keys_tenant" ON "idempotency_keys"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "idempotency_keys_expired_select" ON "idempotency_keys" FOR SELECT
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL AND "created_at" < now() - interval '24 hours');
CREATE POLICY "idempotency_keys_expired_delete" ON "idempotency_keys" FOR DELETE
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL AND "created_at" < now() - interval '24 hours');
-- system_health
ALTER TABLE "system_health" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "system_health" FORCE ROW LEVEL SECURITY;
CREATE POLICY "system_health_all" ON "system_health" USING (true) WITH CHECK (true);

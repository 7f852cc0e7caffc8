-- Hand-written (ent does not model row-level security): the policies of
-- the data-lifecycle tables, the pattern of the tenant_rls migration. Each
-- admits only the rows of the tenant named by app.tenant_id.
-- Without a tenant, the system viewer may read two things, never write them:
-- erasure jobs that are not finished, so that the worker of every instance
-- finds and resumes them (it then works each one with the job's tenant
-- set), and runs older than one day, the shortest retention, so that the
-- retention job finds the tenants with expired runs (it then deletes them
-- with each tenant set).

SET LOCAL lock_timeout = '5s';
-- erasures
ALTER TABLE "erasures" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "erasures" FORCE ROW LEVEL SECURITY;
CREATE POLICY "erasures_tenant" ON "erasures"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "erasures_unfinished_select" ON "erasures" FOR SELECT
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL AND "status" IN ('pending', 'running'));
-- run_removals
ALTER TABLE "run_removals" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "run_removals" FORCE ROW LEVEL SECURITY;
CREATE POLICY "run_removals_tenant" ON "run_removals"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- agent_runs: retention's discovery of tenants with expired runs
CREATE POLICY "agent_runs_expired_select" ON "agent_runs" FOR SELECT
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL AND "created_at" < now() - interval '1 day');

-- Hand-written (ent does not model row-level security): the policies of the
-- rollup tables for DB_TENANT_RLS=on, as 20261126124500_tenant_rls.sql does
-- for the six tables. A tenant sees and writes only its own rows. The
-- rollup and delta tables also admit the system viewer (no app.tenant_id),
-- which folds every tenant's deltas into the rollups inside `serve`: they
-- hold counts and sums only, no personal data. usage_run_marks stays
-- tenant-only.

SET LOCAL lock_timeout = '5s';
-- run_rollups
ALTER TABLE "run_rollups" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "run_rollups" FORCE ROW LEVEL SECURITY;
CREATE POLICY "run_rollups_tenant" ON "run_rollups"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "run_rollups_system" ON "run_rollups"
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL)
  WITH CHECK (nullif(current_setting('app.tenant_id', true), '') IS NULL);
-- run_rollup_deltas
ALTER TABLE "run_rollup_deltas" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "run_rollup_deltas" FORCE ROW LEVEL SECURITY;
CREATE POLICY "run_rollup_deltas_tenant" ON "run_rollup_deltas"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "run_rollup_deltas_system" ON "run_rollup_deltas"
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL)
  WITH CHECK (nullif(current_setting('app.tenant_id', true), '') IS NULL);
-- usage_rollups
ALTER TABLE "usage_rollups" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_rollups" FORCE ROW LEVEL SECURITY;
CREATE POLICY "usage_rollups_tenant" ON "usage_rollups"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "usage_rollups_system" ON "usage_rollups"
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL)
  WITH CHECK (nullif(current_setting('app.tenant_id', true), '') IS NULL);
-- usage_rollup_deltas
ALTER TABLE "usage_rollup_deltas" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_rollup_deltas" FORCE ROW LEVEL SECURITY;
CREATE POLICY "usage_rollup_deltas_tenant" ON "usage_rollup_deltas"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);
CREATE POLICY "usage_rollup_deltas_system" ON "usage_rollup_deltas"
  USING (nullif(current_setting('app.tenant_id', true), '') IS NULL)
  WITH CHECK (nullif(current_setting('app.tenant_id', true), '') IS NULL);
-- usage_run_marks
ALTER TABLE "usage_run_marks" ENABLE ROW LEVEL SECURITY;
ALTER TABLE "usage_run_marks" FORCE ROW LEVEL SECURITY;
CREATE POLICY "usage_run_marks_tenant" ON "usage_run_marks"
  USING ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid)
  WITH CHECK ("tenant_id" = nullif(current_setting('app.tenant_id', true), '')::uuid);

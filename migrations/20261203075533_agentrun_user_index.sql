-- atlas:txmode none

SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY "agentrun_tenant_id_user_id" ON "agent_runs" ("tenant_id", "user_id");

-- atlas:txmode none

SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY "agentrun_user_id" ON "agent_runs" ("user_id");

-- atlas:txmode none

SET lock_timeout = '1s';
-- TX003: IF NOT EXISTS would accept the INVALID index of a failed build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "t_b" ON "t" ("b");

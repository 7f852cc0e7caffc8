-- atlas:txmode none

SET lock_timeout = '1s';
-- lint:ignore TX003 reason: an operator checks indisvalid after every apply
CREATE INDEX CONCURRENTLY IF NOT EXISTS "t_b" ON "t" ("b");

-- atlas:txmode none

SET lock_timeout = '1s';
-- MF101: without a transaction, a unique index still fails on duplicates.
CREATE UNIQUE INDEX CONCURRENTLY "t_b_key" ON "t" ("b");

-- Safe: an index built CONCURRENTLY on an existing table, in a file that
-- runs without a transaction, with a lock timeout for the session.
-- atlas:txmode none

SET lock_timeout = '1s';
CREATE INDEX CONCURRENTLY "t_b" ON "t" ("b");
DROP INDEX CONCURRENTLY "l_v";

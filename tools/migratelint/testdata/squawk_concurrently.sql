-- squawk: CREATE INDEX CONCURRENTLY fails inside the file's transaction.
SET LOCAL lock_timeout = '1s';
CREATE INDEX CONCURRENTLY "t_b" ON "t" ("b");

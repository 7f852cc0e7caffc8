-- squawk: an index built without CONCURRENTLY blocks writes to an existing table.
SET LOCAL lock_timeout = '1s';
CREATE INDEX "t_b" ON "t" ("b");

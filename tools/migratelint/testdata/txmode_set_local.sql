-- atlas:txmode none

-- TX002: outside a transaction SET LOCAL lasts for its own statement only.
SET LOCAL lock_timeout = '1s';
CREATE INDEX CONCURRENTLY "t_b" ON "t" ("b");

-- atlas:txmode none

-- squawk: CONCURRENTLY still waits for a lock, so lock_timeout is still required.
CREATE INDEX CONCURRENTLY "t_b" ON "t" ("b");

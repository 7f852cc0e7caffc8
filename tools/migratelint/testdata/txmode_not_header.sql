-- atlas:txmode none
-- TX001: no empty line after the header, so Atlas does not read the
-- directive and the file runs in a transaction, where CONCURRENTLY fails.
SET LOCAL lock_timeout = '1s';
CREATE INDEX CONCURRENTLY "t_b" ON "t" ("b");

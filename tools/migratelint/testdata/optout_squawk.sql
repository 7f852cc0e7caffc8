SET LOCAL lock_timeout = '1s';
-- lint:ignore require-concurrent-index-creation reason: "t" holds a few rows
CREATE INDEX "t_b" ON "t" ("b");
-- lint:ignore squawk reason: "c" is empty in every environment
ALTER TABLE "c" ADD CONSTRAINT "c_id_positive" CHECK ("id" > 0);

SET LOCAL lock_timeout = '1s';
-- Create index "t_b" to table: "t"
CREATE UNIQUE INDEX "t_b" ON "t" ("b");

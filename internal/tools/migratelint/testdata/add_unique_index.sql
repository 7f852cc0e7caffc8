-- Create index "t_b" to table: "t"
CREATE UNIQUE INDEX "t_b" ON "t" ("b");

-- Safe: every statement works on the table this file creates, which no
-- other session can see before the file's transaction commits.
CREATE TABLE "u" ("id" bigint NOT NULL, "p" bigint NULL, "b" character varying NULL, PRIMARY KEY ("id"), CONSTRAINT "u_p" FOREIGN KEY ("p") REFERENCES "u" ("id"));
CREATE INDEX "u_p_idx" ON "u" ("p");
ALTER TABLE "u" ALTER COLUMN "b" TYPE text;
ALTER TABLE "u" ADD CONSTRAINT "u_id_positive" CHECK ("id" > 0);
ALTER TABLE "u" ADD CONSTRAINT "u_b_key" UNIQUE ("b");
ALTER TABLE "u" ENABLE ROW LEVEL SECURITY;
CREATE POLICY "u_all" ON "u" USING (true);

-- squawk: no lock_timeout before a statement that locks an existing table.
-- The statements on the new table "u" need none, so the finding is at the
-- ALTER TABLE of "t".
CREATE TABLE "u" ("id" bigint NOT NULL, "p" bigint NULL, PRIMARY KEY ("id"), CONSTRAINT "u_p" FOREIGN KEY ("p") REFERENCES "u" ("id"));
CREATE INDEX "u_p_idx" ON "u" ("p");
ALTER TABLE "t" ADD COLUMN "note" character varying NULL;

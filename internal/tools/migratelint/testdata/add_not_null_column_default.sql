-- Modify "t" table
ALTER TABLE "t" ADD COLUMN "n" bigint NOT NULL DEFAULT 0;

-- Modify "t" table
ALTER TABLE "t" ADD COLUMN "note" character varying NULL;

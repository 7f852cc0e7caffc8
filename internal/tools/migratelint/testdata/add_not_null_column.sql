-- Modify "t" table
ALTER TABLE "t" ADD COLUMN "c" integer NOT NULL;

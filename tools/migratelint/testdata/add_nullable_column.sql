SET LOCAL lock_timeout = '1s';
-- Modify "t" table
ALTER TABLE "t" ADD COLUMN "note" character varying NULL;

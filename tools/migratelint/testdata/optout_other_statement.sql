SET LOCAL lock_timeout = '1s';
-- Modify "t" table
-- lint:ignore DS103 reason: applies to the next statement only
ALTER TABLE "t" ADD COLUMN "note" character varying NULL;
-- Modify "t" table
ALTER TABLE "t" DROP COLUMN "b";

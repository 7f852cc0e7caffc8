SET LOCAL lock_timeout = '1s';
-- Modify "t" table
ALTER TABLE "t" DROP COLUMN "b";

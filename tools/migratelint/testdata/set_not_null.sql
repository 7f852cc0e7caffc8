SET LOCAL lock_timeout = '1s';
-- Modify "t" table
ALTER TABLE "t" ALTER COLUMN "b" SET NOT NULL;

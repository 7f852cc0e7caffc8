SET LOCAL lock_timeout = '1s';
-- Rename a column from "b" to "name"
ALTER TABLE "t" RENAME COLUMN "b" TO "name";

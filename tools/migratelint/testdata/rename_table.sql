SET LOCAL lock_timeout = '1s';
-- Rename a table from "t" to "things"
ALTER TABLE "t" RENAME TO "things";

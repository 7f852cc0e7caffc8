-- squawk: changing a column's type rewrites the table under ACCESS EXCLUSIVE.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "t" ALTER COLUMN "b" TYPE text;

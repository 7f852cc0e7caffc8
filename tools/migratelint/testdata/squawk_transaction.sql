-- squawk: the file already runs in a transaction.
SET LOCAL lock_timeout = '1s';
BEGIN;
ALTER TABLE "t" ADD COLUMN "x" bigint NULL;
COMMIT;

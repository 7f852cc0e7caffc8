-- squawk: a volatile default rewrites the table.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "t" ADD COLUMN "r" double precision NULL DEFAULT random();

-- squawk: a UNIQUE constraint without USING INDEX builds its index under ACCESS EXCLUSIVE.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "t" ADD CONSTRAINT "t_b_key" UNIQUE ("b");

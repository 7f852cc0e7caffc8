-- squawk: a CHECK without NOT VALID scans the table under lock.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "t" ADD CONSTRAINT "t_a_positive" CHECK ("a" > 0);

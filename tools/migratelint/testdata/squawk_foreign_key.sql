-- squawk: a foreign key without NOT VALID scans and locks both tables.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "l" ADD CONSTRAINT "l_t_fk" FOREIGN KEY ("v") REFERENCES "t" ("a");

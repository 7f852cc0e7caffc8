-- Safe: NOT VALID constraints, validated by a later migration.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "l" ADD CONSTRAINT "l_t_fk" FOREIGN KEY ("v") REFERENCES "t" ("a") NOT VALID;
ALTER TABLE "t" ADD CONSTRAINT "t_a_positive" CHECK ("a" > 0) NOT VALID;

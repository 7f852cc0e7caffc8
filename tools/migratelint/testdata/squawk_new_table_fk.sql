-- squawk: a new table referencing an existing one locks that one, so it
-- needs a lock_timeout too.
CREATE TABLE "u" ("id" bigint NOT NULL, "t_a" integer NULL, PRIMARY KEY ("id"), CONSTRAINT "u_t" FOREIGN KEY ("t_a") REFERENCES "t" ("a"));

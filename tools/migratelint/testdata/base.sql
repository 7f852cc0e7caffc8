-- Base state every case is linted against: table "t" (a, b), table "c"
-- referencing it, and table "l" (id, v) without primary key, indexed on v.
CREATE TABLE "t" ("a" integer NOT NULL, "b" character varying NULL, PRIMARY KEY ("a"));
CREATE TABLE "c" ("id" integer NOT NULL, "t_a" integer NULL, PRIMARY KEY ("id"), CONSTRAINT "c_t_fk" FOREIGN KEY ("t_a") REFERENCES "t" ("a") ON UPDATE NO ACTION ON DELETE SET NULL);
CREATE TABLE "l" ("id" integer NOT NULL, "v" integer NULL);
CREATE INDEX "l_v" ON "l" ("v");

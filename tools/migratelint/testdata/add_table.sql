-- Create "u" table: new tables may have NOT NULL columns and unique indexes.
CREATE TABLE "u" ("id" integer NOT NULL, "email" character varying NOT NULL, PRIMARY KEY ("id"));
-- Create index "u_email" to table: "u"
CREATE UNIQUE INDEX "u_email" ON "u" ("email");

-- Modify "t" table
ALTER TABLE "t" ALTER COLUMN "b" SET NOT NULL;

-- Drop "c" table
DROP TABLE "c";

SET LOCAL lock_timeout = '1s';
-- Drop "c" table
DROP TABLE "c";

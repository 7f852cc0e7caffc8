-- lint:ignore destructive, CD101 reason: "c" is replaced, see the design doc

SET LOCAL lock_timeout = '1s';
-- Modify "c" table
ALTER TABLE "c" DROP CONSTRAINT "c_t_fk";
-- Drop "c" table
DROP TABLE "c";

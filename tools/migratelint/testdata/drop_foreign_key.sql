SET LOCAL lock_timeout = '1s';
-- Modify "c" table
ALTER TABLE "c" DROP CONSTRAINT "c_t_fk";

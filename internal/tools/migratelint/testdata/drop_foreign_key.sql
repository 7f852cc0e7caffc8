-- Modify "c" table
ALTER TABLE "c" DROP CONSTRAINT "c_t_fk";

SET LOCAL lock_timeout = '1s';
-- Renaming a constraint or an index is not a drop.
ALTER TABLE "c" RENAME CONSTRAINT "c_t_fk" TO "c_t_a_fk";
ALTER INDEX "c_pkey" RENAME TO "c_pk";

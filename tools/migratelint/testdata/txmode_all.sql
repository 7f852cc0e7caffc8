-- atlas:txmode all

-- TX001: "all" is a mode for a whole run, not for a file.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "t" ADD COLUMN "note" character varying NULL;

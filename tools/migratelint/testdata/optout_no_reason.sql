SET LOCAL lock_timeout = '1s';
-- lint:ignore DS102
DROP TABLE "c";

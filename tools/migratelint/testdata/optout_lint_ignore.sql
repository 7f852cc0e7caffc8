SET LOCAL lock_timeout = '1s';
-- lint:ignore DS102 reason: table "c" was never written to in production
DROP TABLE "c";

SET LOCAL lock_timeout = '1s';
-- atlas:nolint DS102 reason:
DROP TABLE "c";

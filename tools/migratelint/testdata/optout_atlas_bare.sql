SET LOCAL lock_timeout = '1s';
-- atlas:nolint
DROP TABLE "c";

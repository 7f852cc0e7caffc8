SET LOCAL lock_timeout = '1s';
-- Modify "t" table
-- atlas:nolint DS103 reason: "b" is unread since the previous release
ALTER TABLE "t" DROP COLUMN "b";

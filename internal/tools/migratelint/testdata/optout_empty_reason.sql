-- atlas:nolint DS102 reason:
DROP TABLE "c";

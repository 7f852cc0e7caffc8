-- lint:ignore DS102
DROP TABLE "c";

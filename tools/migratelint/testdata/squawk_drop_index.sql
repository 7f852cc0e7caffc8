-- squawk: DROP INDEX without CONCURRENTLY blocks every access to the table.
SET LOCAL lock_timeout = '1s';
DROP INDEX "l_v";

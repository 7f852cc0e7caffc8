-- TX004: DROP INDEX CONCURRENTLY cannot run in the file's transaction.
SET LOCAL lock_timeout = '1s';
DROP INDEX CONCURRENTLY "l_v";

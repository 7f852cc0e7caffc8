-- squawk: TRUNCATE ... CASCADE empties every referencing table too.
SET LOCAL lock_timeout = '1s';
TRUNCATE "t" CASCADE;

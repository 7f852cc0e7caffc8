-- squawk: a PRIMARY KEY without USING INDEX builds its index under ACCESS EXCLUSIVE.
SET LOCAL lock_timeout = '1s';
ALTER TABLE "l" ADD PRIMARY KEY ("id");

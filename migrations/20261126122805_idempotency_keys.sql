-- Create "idempotency_keys" table
CREATE TABLE "idempotency_keys" ("id" uuid NOT NULL, "tenant_id" uuid NOT NULL, "created_at" timestamptz NOT NULL, "scope" character varying NOT NULL, "key" character varying NOT NULL, "request_hash" character varying NOT NULL, "status_code" bigint NOT NULL, "response" bytea NOT NULL, PRIMARY KEY ("id"));
-- Create index "idempotencykey_created_at" to table: "idempotency_keys"
CREATE INDEX "idempotencykey_created_at" ON "idempotency_keys" ("created_at");
-- Create index "idempotencykey_tenant_id_scope_key" to table: "idempotency_keys"
CREATE UNIQUE INDEX "idempotencykey_tenant_id_scope_key" ON "idempotency_keys" ("tenant_id", "scope", "key");

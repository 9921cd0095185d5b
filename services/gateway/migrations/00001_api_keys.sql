-- API keys of the gateway. The secret is never stored: only its SHA-256 (keys carry 256
-- bits of randomness, so a slow password hash would add latency without adding safety).
-- +goose Up
CREATE TABLE gateway.api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('reader', 'editor', 'admin')),
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    -- updated_at drives the replicas' incremental cache sync (see keycache.go).
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX api_keys_tenant_idx ON gateway.api_keys (tenant_id, created_at);
CREATE INDEX api_keys_updated_idx ON gateway.api_keys (updated_at);

-- +goose Down
DROP TABLE gateway.api_keys;

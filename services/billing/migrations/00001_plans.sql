-- Tenants' plans and feature overrides. A tenant has a row once billing has something to
-- say about it; without one it has the default plan (DEFAULT_PLAN_ID).
-- +goose Up
-- revision orders every change of a tenant's entitlements: the services' caches follow
-- the changes after the revision they saw. Writers take one advisory lock, so revisions
-- become visible in order.
CREATE SEQUENCE billing.revisions;
CREATE TABLE billing.tenants (
    tenant_id  text PRIMARY KEY,
    -- plan_id is NULL when the tenant has overrides but no plan of its own.
    plan_id    text,
    revision   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tenants_revision_idx ON billing.tenants (revision);
CREATE TABLE billing.feature_overrides (
    tenant_id   text NOT NULL REFERENCES billing.tenants ON DELETE CASCADE,
    feature_key text NOT NULL,
    enabled     boolean NOT NULL,
    config_json jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, feature_key)
);

-- +goose Down
DROP TABLE billing.feature_overrides;
DROP TABLE billing.tenants;
DROP SEQUENCE billing.revisions;

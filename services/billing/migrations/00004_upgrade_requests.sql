-- Self-serve: a tenant's requests for a higher plan. The operator grants one by assigning
-- the plan; a request is "granted" once the tenant's plan is at least its target.
-- +goose Up
CREATE TABLE billing.upgrade_requests (
    request_id   uuid        PRIMARY KEY,
    tenant_id    text        NOT NULL,
    current_plan text        NOT NULL,
    target_plan  text        NOT NULL,
    reason       text        NOT NULL,
    requested_by text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX upgrade_requests_tenant_idx ON billing.upgrade_requests (tenant_id, created_at DESC);

-- +goose Down
DROP TABLE billing.upgrade_requests;

-- Retention policies: one row per tenant that set one. A NULL ttl keeps that data forever.
-- +goose Up
CREATE TABLE governance.retention_policies (
    tenant_id                   text        PRIMARY KEY,
    messages_ttl_days           integer,
    checkpoints_ttl_days        integer,
    audit_ttl_days              integer,
    documents_ttl_days          integer,
    backups_ttl_days            integer,
    hard_delete_enabled         boolean     NOT NULL DEFAULT false,
    anonymize_instead_of_delete boolean     NOT NULL DEFAULT false,
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE governance.retention_policies;

-- Legal holds: while a hold is active (released_at IS NULL), nothing in its scope is
-- destroyed; the services that delete ask governance first.
-- +goose Up
CREATE TABLE governance.legal_holds (
    hold_id     bigserial   PRIMARY KEY,
    tenant_id   text        NOT NULL,
    scope_type  text        NOT NULL CHECK (scope_type IN ('tenant', 'document', 'session', 'user_key', 'backup_set')),
    scope_id    text        NOT NULL,
    reason      text        NOT NULL,
    created_by  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_by text,
    released_at timestamptz
);
CREATE INDEX legal_holds_active_idx ON governance.legal_holds (tenant_id, scope_type, scope_id) WHERE released_at IS NULL;

-- +goose Down
DROP TABLE governance.legal_holds;

-- A planned row's hold scopes as one JSON array ([{"scope_type", "scope_id"}, ...]), so that
-- a page of the plan is written in one statement; and the audit log in id order per tenant
-- (ids are UUIDv7, in time order), which retention and DSARs page through.
-- +goose Up
ALTER TABLE governance.retention_items DROP COLUMN scope_types, DROP COLUMN scope_ids,
    ADD COLUMN scopes jsonb NOT NULL DEFAULT '[]';
CREATE INDEX audit_events_tenant_id_idx ON governance.audit_events (tenant_id, id);

-- +goose Down
DROP INDEX governance.audit_events_tenant_id_idx;
ALTER TABLE governance.retention_items DROP COLUMN scopes,
    ADD COLUMN scope_types text[] NOT NULL DEFAULT '{}', ADD COLUMN scope_ids text[] NOT NULL DEFAULT '{}';

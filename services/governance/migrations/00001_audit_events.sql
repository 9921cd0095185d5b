-- The audit log. Rows are written only through AuditService.RecordEvents; metadata is
-- redacted before it gets here.
-- +goose Up
CREATE TABLE governance.audit_events (
    id            uuid PRIMARY KEY,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    tenant_id     text NOT NULL DEFAULT '',
    actor_type    text NOT NULL,
    actor_id      text NOT NULL DEFAULT '',
    event_type    text NOT NULL,
    outcome       text NOT NULL,
    resource_type text NOT NULL DEFAULT '',
    resource_id   text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    client_ip     text NOT NULL DEFAULT '',
    metadata      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant_time_idx ON governance.audit_events (tenant_id, occurred_at DESC, id DESC);
CREATE INDEX audit_events_tenant_type_idx ON governance.audit_events (tenant_id, event_type, occurred_at DESC);

-- +goose Down
DROP TABLE governance.audit_events;

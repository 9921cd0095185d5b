-- Billing webhooks: every event is written here in the transaction of what caused it; the
-- dispatcher delivers pending rows. body is the exact bytes signed and sent, so a
-- redelivery is byte-for-byte the same event (same id). dedup_key makes an event that
-- must happen once per tenant and period (a soft cap) happen once. state unsent: the
-- event happened while webhooks were off (kept as a record, never sent).
-- +goose Up
CREATE TABLE billing.webhook_outbox (
    event_id        uuid        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    event_type      text        NOT NULL,
    body            bytea       NOT NULL,
    dedup_key       text        UNIQUE,
    state           text        NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'unsent')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX webhook_outbox_due_idx ON billing.webhook_outbox (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_outbox_finished_idx ON billing.webhook_outbox (finished_at) WHERE state IN ('delivered', 'unsent');

-- +goose Down
DROP TABLE billing.webhook_outbox;

-- Actions the UI BFF accepted (e.g. reindex-document), kept UI_ACTION_RETENTION_DAYS so
-- that an app can show what was asked and when.
-- +goose Up
CREATE TABLE ui.actions (
    action_id   uuid        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    kind        text        NOT NULL,
    entity      text        NOT NULL,
    entity_id   text        NOT NULL,
    actor       text        NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX actions_accepted_idx ON ui.actions (accepted_at);

-- +goose Down
DROP TABLE ui.actions;

-- Retention runs: a run is planned first (every expired row's id and what will become of it,
-- in retention_items), then carried out batch by batch, each item marked with its outcome
-- once its owner confirmed. A crash leaves the run unfinished with its plan; the runner of
-- any replica resumes it once its lease has lapsed, and resends at most the batch in flight,
-- which the owners' idempotent purges do not change twice.
-- +goose Up
CREATE TABLE governance.retention_runs (
    run_id       bigserial   PRIMARY KEY,
    tenant_id    text        NOT NULL,
    status       text        NOT NULL CHECK (status IN ('planning', 'running', 'completed', 'failed')),
    mode         text        NOT NULL CHECK (mode IN ('delete', 'anonymize', 'report_only')),
    policy       jsonb       NOT NULL,
    requested_by text        NOT NULL,
    error        text        NOT NULL DEFAULT '',
    attempts     integer     NOT NULL DEFAULT 0,
    lease_until  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE UNIQUE INDEX retention_runs_one_unfinished ON governance.retention_runs (tenant_id) WHERE status IN ('planning', 'running');
CREATE INDEX retention_runs_by_tenant ON governance.retention_runs (tenant_id, run_id DESC);

CREATE TABLE governance.retention_categories (
    run_id       bigint      NOT NULL REFERENCES governance.retention_runs ON DELETE CASCADE,
    category     text        NOT NULL,
    ord          integer     NOT NULL,
    ttl_days     integer,
    cutoff       timestamptz,
    status       text        NOT NULL CHECK (status IN ('skipped', 'unavailable', 'pending', 'planned', 'done')),
    note         text        NOT NULL DEFAULT '',
    more_expired boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, category)
);

CREATE TABLE governance.retention_items (
    run_id   bigint NOT NULL REFERENCES governance.retention_runs ON DELETE CASCADE,
    category text   NOT NULL,
    item_id  text   NOT NULL,
    -- The scopes whose hold covers the row (the owner's DataItem.scopes), checked again
    -- before each batch: a hold placed after planning still keeps its rows.
    scope_types text[] NOT NULL DEFAULT '{}',
    scope_ids   text[] NOT NULL DEFAULT '{}',
    -- action is what the plan decided; outcome what happened (NULL: not yet).
    action   text   NOT NULL CHECK (action IN ('delete', 'anonymize', 'held', 'kept')),
    outcome  text            CHECK (outcome IN ('deleted', 'anonymized', 'held', 'kept', 'deferred')),
    PRIMARY KEY (run_id, category, item_id)
);
CREATE INDEX retention_items_pending ON governance.retention_items (run_id, category, item_id) WHERE outcome IS NULL;

-- +goose Down
DROP TABLE governance.retention_items;
DROP TABLE governance.retention_categories;
DROP TABLE governance.retention_runs;

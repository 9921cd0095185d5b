-- Data subject access requests and their artifacts. A destructive request (delete,
-- anonymize) waits in pending_approval until a second admin key approves it.
-- +goose Up
CREATE TABLE governance.dsar_requests (
    dsar_id       bigserial   PRIMARY KEY,
    tenant_id     text        NOT NULL,
    request_type  text        NOT NULL CHECK (request_type IN ('export', 'delete', 'anonymize')),
    subject_type  text        NOT NULL CHECK (subject_type IN ('session', 'user_key', 'document', 'tenant')),
    subject_id    text        NOT NULL,
    reason        text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending_approval', 'queued', 'running', 'completed', 'failed')),
    requested_by  text        NOT NULL,
    approved_by   text        NOT NULL DEFAULT '',
    error_code    text        NOT NULL DEFAULT '',
    error_message text        NOT NULL DEFAULT '',
    results       jsonb       NOT NULL DEFAULT '[]',
    -- planned: the artifact files hold every row (export) or id (delete, anonymize) the
    -- request covers; a resumed destructive request purges exactly those.
    planned       boolean     NOT NULL DEFAULT false,
    attempts      integer     NOT NULL DEFAULT 0,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    approved_at   timestamptz,
    finished_at   timestamptz
);
CREATE INDEX dsar_requests_by_tenant ON governance.dsar_requests (tenant_id, dsar_id DESC);
CREATE INDEX dsar_requests_unfinished ON governance.dsar_requests (dsar_id) WHERE status IN ('queued', 'running');

-- One file of an artifact: an export's rows of one table, or the ids a delete or anonymize
-- changed. Written as the request runs; a resumed request rewrites its files.
CREATE TABLE governance.dsar_artifact_files (
    dsar_id bigint NOT NULL REFERENCES governance.dsar_requests ON DELETE CASCADE,
    name    text   NOT NULL,
    ord     integer NOT NULL,
    rows    bigint NOT NULL,
    sha256  text   NOT NULL,
    content text   NOT NULL,
    PRIMARY KEY (dsar_id, name)
);

-- +goose Down
DROP TABLE governance.dsar_artifact_files;
DROP TABLE governance.dsar_requests;

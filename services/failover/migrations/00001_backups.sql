-- The backups made and the restore drills run, for DR readiness. The backup files
-- themselves live in BACKUP_LOCAL_DIR, each set with its manifest.
-- +goose Up
CREATE TABLE failover.backups (
    backup_id       text        PRIMARY KEY,
    type            text        NOT NULL CHECK (type IN ('all', 'db', 'schema', 'metadata')),
    dir             text        NOT NULL,
    bytes           bigint      NOT NULL,
    encrypted       boolean     NOT NULL,
    signed          boolean     NOT NULL,
    manifest_sha256 text        NOT NULL,
    created_at      timestamptz NOT NULL,
    pruned_at       timestamptz
);
CREATE INDEX backups_by_time ON failover.backups (created_at DESC);

CREATE TABLE failover.drills (
    drill_id    bigserial   PRIMARY KEY,
    backup_id   text        NOT NULL,
    ok          boolean     NOT NULL,
    detail      text        NOT NULL,
    started_at  timestamptz NOT NULL,
    duration_ms bigint      NOT NULL
);
CREATE INDEX drills_by_time ON failover.drills (started_at DESC);

-- +goose Down
DROP TABLE failover.drills;
DROP TABLE failover.backups;

-- Each region's failover state: its role, where its failover stands, and the operator's
-- write freeze; one row per region (a standby's row arrives by replication). Transitions
-- are kept as a log.
-- +goose Up
CREATE TABLE failover.regions (
    region_id     text        PRIMARY KEY,
    role          text        NOT NULL CHECK (role IN ('primary', 'secondary')),
    state         text        NOT NULL DEFAULT 'idle',
    writes_frozen boolean     NOT NULL DEFAULT false,
    freeze_reason text        NOT NULL DEFAULT '',
    updated_by    text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE failover.transitions (
    transition_id bigserial   PRIMARY KEY,
    region_id     text        NOT NULL,
    from_state    text        NOT NULL,
    to_state      text        NOT NULL,
    event         text        NOT NULL,
    actor         text        NOT NULL,
    reason        text        NOT NULL DEFAULT '',
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transitions_by_region ON failover.transitions (region_id, transition_id DESC);

-- +goose Down
DROP TABLE failover.transitions;
DROP TABLE failover.regions;

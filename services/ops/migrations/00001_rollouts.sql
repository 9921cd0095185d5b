-- Kill switches and canary rollouts: one row per key that was ever set. A kill switch's
-- value is 1 (on) or 0; a canary's is its percentage of tenants. A key without a row is
-- off (kill) or everybody's (canary).
-- +goose Up
CREATE TABLE ops.rollouts (
    key        text        PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('kill', 'canary')),
    value      integer     NOT NULL CHECK (value BETWEEN 0 AND 100),
    updated_by text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE ops.rollouts;

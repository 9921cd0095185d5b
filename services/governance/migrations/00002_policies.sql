-- Policy-as-code: each tenant's rules (pkg/policy). revision counts every change of any
-- rule, so that the gateways refetch the rules only when one changed.
-- +goose Up
CREATE TABLE governance.policies (
    policy_id      bigserial   PRIMARY KEY,
    tenant_id      text        NOT NULL,
    rule_key       text        NOT NULL,
    enabled        boolean     NOT NULL,
    priority       integer     NOT NULL,
    condition_json jsonb       NOT NULL,
    action_json    jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, rule_key)
);
CREATE TABLE governance.policy_revision (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision  bigint  NOT NULL
);
INSERT INTO governance.policy_revision (revision) VALUES (0);

-- +goose Down
DROP TABLE governance.policy_revision;
DROP TABLE governance.policies;

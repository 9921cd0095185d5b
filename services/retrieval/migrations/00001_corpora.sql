-- Corpora: a tenant's named collections and where each is searched. The same corpus id
-- may exist in several tenants; every query filters by tenant.
-- +goose Up
CREATE TABLE retrieval.corpora (
    tenant_id       text NOT NULL,
    corpus_id       text NOT NULL,
    name            text NOT NULL,
    provider_config jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, corpus_id)
);

-- +goose Down
DROP TABLE retrieval.corpora;

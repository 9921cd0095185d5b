-- Governance selects and purges a tenant's messages by seq and its checkpoints by
-- (run_id, step), page by page (the data-owner contract): both in index order.
-- +goose Up
CREATE INDEX messages_by_tenant_seq ON run.messages (tenant_id, seq);
CREATE INDEX checkpoints_by_tenant_run ON run.checkpoints (tenant_id, run_id, step);

-- +goose Down
DROP INDEX run.checkpoints_by_tenant_run;
DROP INDEX run.messages_by_tenant_seq;

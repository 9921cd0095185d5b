-- dead_lettered_at marks a failed document whose job ran out of attempts (INGEST_MAX_ATTEMPTS)
-- on failures that trying again might fix (a stalled stage, an unavailable service): a dead
-- letter, listed by GET /v1/ops/ingestion and put back by its requeue route under the same
-- job_id. Documents failed so before are marked by their reason.
-- +goose Up
ALTER TABLE ingest.documents ADD COLUMN dead_lettered_at timestamptz;
UPDATE ingest.documents SET dead_lettered_at = finished_at
 WHERE status = 'failed' AND failure_reason LIKE 'gave up after % attempts: %';
CREATE INDEX documents_dead_letters ON ingest.documents (tenant_id, dead_lettered_at DESC) WHERE dead_lettered_at IS NOT NULL;
-- A dead letter is requeued by its job id.
CREATE INDEX documents_by_job ON ingest.documents (tenant_id, job_id);

-- +goose Down
DROP INDEX ingest.documents_by_job;
ALTER TABLE ingest.documents DROP COLUMN dead_lettered_at;

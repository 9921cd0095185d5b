-- anonymized_at marks a document whose content and filename a retention run or a DSAR
-- removed (its chunks were removed from retrieval first); its counts stay.
-- +goose Up
ALTER TABLE ingest.documents ADD COLUMN anonymized_at timestamptz;

-- +goose Down
ALTER TABLE ingest.documents DROP COLUMN anonymized_at;

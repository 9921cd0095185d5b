-- Versions come from one sequence, so that a document's versions only grow, across
-- deletes and re-creations of the same id: the retrieval service fences chunk writes by
-- version (a late write of a deleted version is dropped), which needs a re-created
-- document's first version to be newer than the deleted one's.
-- +goose Up
CREATE SEQUENCE ingest.document_versions;
SELECT setval('ingest.document_versions', COALESCE(max(version), 1), max(version) IS NOT NULL) FROM ingest.documents;
ALTER TABLE ingest.documents ALTER COLUMN version SET DEFAULT nextval('ingest.document_versions');
ALTER SEQUENCE ingest.document_versions OWNED BY ingest.documents.version;

-- +goose Down
ALTER TABLE ingest.documents ALTER COLUMN version SET DEFAULT 1;
DROP SEQUENCE ingest.document_versions;

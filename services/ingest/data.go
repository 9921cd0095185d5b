package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/dataowner"
)

// The ingest service's side of the data-owner contract (nexusrag.governance.v1 data.proto).
// One category, documents (id: document id). Delete removes the document's chunks from
// retrieval, then its row, the same path as DELETE /v1/documents/{id}. Anonymize removes
// the chunks from retrieval, then blanks content, file (a PDF's bytes) and filename and
// sets anonymized_at; the corpus, content type, sizes, chunk count, status and times stay.
// A document being ingested (queued or processing) is deferred: left as it is for the next run.
const catDocuments = "documents"

var dataCategories = []string{catDocuments}

// SelectDocumentData lists the documents a retention run or a DSAR touches.
func (s *Server) SelectDocumentData(ctx context.Context, req *ingestv1.SelectDocumentDataRequest) (*ingestv1.SelectDocumentDataResponse, error) {
	q, err := dataowner.CheckQuery(req.GetQuery(), dataCategories)
	if err != nil {
		return nil, err
	}
	var doc *string
	switch q.SubjectType {
	case dataowner.SubjectDocument:
		doc = &q.SubjectID
	case dataowner.SubjectSession, dataowner.SubjectUserKey: // documents are not attributed to sessions or keys
		return &ingestv1.SelectDocumentDataResponse{Selection: &governancev1.DataSelection{}}, nil
	}
	rows, err := s.store.pool.Query(ctx, `SELECT d.document_id, CASE WHEN $6 THEN to_jsonb(d.*)::text ELSE '' END FROM ingest.documents d
		WHERE d.tenant_id = $1 AND ($2::timestamptz IS NULL OR d.created_at < $2) AND ($3::text IS NULL OR d.document_id = $3)
		AND d.document_id > $4 ORDER BY d.document_id LIMIT $5`, q.Tenant, q.OlderThan, doc, q.AfterID, q.Limit, q.WithRows)
	if err != nil {
		return nil, fmt.Errorf("select documents: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.DataItem, error) {
		var it governancev1.DataItem
		err := r.Scan(&it.Id, &it.RowJson)
		it.Scopes = dataowner.Scope(dataowner.SubjectDocument, it.Id)
		return &it, err
	})
	if err != nil {
		return nil, fmt.Errorf("select documents: %w", err)
	}
	return &ingestv1.SelectDocumentDataResponse{Selection: dataowner.Selection(items, q.Limit)}, nil
}

// PurgeDocumentData deletes or anonymizes documents by id, their chunks in retrieval first.
func (s *Server) PurgeDocumentData(ctx context.Context, req *ingestv1.PurgeDocumentDataRequest) (*ingestv1.PurgeDocumentDataResponse, error) {
	p := req.GetPurge()
	if err := dataowner.CheckPurge(p, dataCategories); err != nil {
		return nil, err
	}
	res := &governancev1.DataPurgeResult{}
	for _, id := range p.GetIds() {
		var changed bool
		var err error
		if p.GetMode() == governancev1.PurgeMode_PURGE_MODE_ANONYMIZE {
			changed, err = s.anonymizeDocument(ctx, p.GetTenantId(), id)
		} else {
			_, err = s.store.Delete(ctx, p.GetTenantId(), id, s.removeChunks(ctx))
			changed = err == nil
		}
		switch {
		case errors.Is(err, errNotFound): // gone already
		case errors.Is(err, errBusy):
			res.DeferredIds = append(res.DeferredIds, id)
		case err != nil:
			return nil, fmt.Errorf("purge document %s: %w", id, err)
		case changed:
			res.Affected++
		}
	}
	return &ingestv1.PurgeDocumentDataResponse{Result: res}, nil
}

func (s *Server) removeChunks(ctx context.Context) func(Document) error {
	return func(d Document) error {
		_, err := s.retrieval.DeleteDocumentChunks(ctx, &retrievalv1.DeleteDocumentChunksRequest{TenantId: d.TenantID, CorpusId: d.CorpusID,
			DocumentId: d.DocumentID, Version: d.Version})
		return err
	}
}

// anonymizeDocument removes the chunks, then the content: a crash in between leaves the
// row unanonymized, and the next purge does both again (removing no chunks twice).
func (s *Server) anonymizeDocument(ctx context.Context, tenant, id string) (bool, error) {
	d, err := scanDocument(s.store.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM ingest.documents WHERE tenant_id = $1 AND document_id = $2`, tenant, id))
	if err != nil {
		return false, err
	}
	if d.locked() {
		return false, errBusy
	}
	if err := s.removeChunks(ctx)(d); err != nil {
		return false, err
	}
	tag, err := s.store.pool.Exec(ctx, `UPDATE ingest.documents SET content = '', file = '', filename = '', anonymized_at = now(), updated_at = now()
		WHERE tenant_id = $1 AND document_id = $2 AND anonymized_at IS NULL AND status NOT IN ('queued', 'processing', 'deleting')`, tenant, id)
	return tag.RowsAffected() == 1, err
}

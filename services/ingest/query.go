package ingest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// sortable are the fields QueryDocuments sorts on, with their SQL type.
var sortable = map[string]string{"created_at": "timestamptz", "updated_at": "timestamptz", "filename": "text",
	"document_id": "text", "status": "text", "size_bytes": "bigint"}

// SortFields are the fields a document list sorts on.
func SortFields() []string {
	out := make([]string, 0, len(sortable))
	for f := range sortable {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// keyOf renders a document's value of field for a keyset.
func keyOf(d Document, field string) string {
	switch field {
	case "created_at":
		return d.CreatedAt.UTC().Format(time.RFC3339Nano)
	case "updated_at":
		return d.UpdatedAt.UTC().Format(time.RFC3339Nano)
	case "filename":
		return d.Filename
	case "status":
		return d.Status
	case "size_bytes":
		return strconv.FormatInt(int64(d.SizeBytes), 10)
	}
	return d.DocumentID
}

// QueryDocuments lists the caller's tenant's documents for the UI.
func (s *Server) QueryDocuments(ctx context.Context, req *ingestv1.QueryDocumentsRequest) (*ingestv1.QueryDocumentsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	keys := slices.Clone(req.GetSort())
	if len(keys) == 0 {
		keys = []*ingestv1.SortKey{{Field: "created_at", Descending: true}}
	}
	if !slices.ContainsFunc(keys, func(k *ingestv1.SortKey) bool { return k.GetField() == "document_id" }) {
		keys = append(keys, &ingestv1.SortKey{Field: "document_id"})
	}
	for _, k := range keys {
		if sortable[k.GetField()] == "" {
			return nil, apierr.InvalidArgument("sort", fmt.Sprintf("cannot sort on %q (%s)", k.GetField(), strings.Join(SortFields(), ", ")))
		}
	}
	if after := req.GetAfter(); len(after) != 0 {
		if len(after) != len(keys) {
			return nil, invalidAfter()
		}
		for i, k := range keys {
			var err error
			switch sortable[k.GetField()] {
			case "timestamptz":
				_, err = time.Parse(time.RFC3339Nano, after[i])
			case "bigint":
				_, err = strconv.ParseInt(after[i], 10, 64)
			}
			if err != nil {
				return nil, invalidAfter()
			}
		}
	}
	limit := int(req.GetLimit())
	if limit < 1 || limit > 100 {
		return nil, apierr.InvalidArgument("limit", "limit must be 1 to 100")
	}
	if c := req.GetCorpusId(); c != "" && !p.AllowsCorpus(c) {
		return nil, principal.CorpusForbidden(c)
	}

	// $6 keeps a scoped key to its corpora, in the page and in the counts.
	args := []any{p.TenantID, req.GetCorpusId(), nullTimestamp(req.GetCreatedFrom()), nullTimestamp(req.GetCreatedTo()), likePattern(req.GetQ()),
		nonNil(p.CorpusIDs)}
	filters := `tenant_id = $1 AND ($2 = '' OR corpus_id = $2) AND ($3::timestamptz IS NULL OR created_at >= $3)
		AND ($4::timestamptz IS NULL OR created_at < $4) AND ($5 = '' OR document_id ILIKE $5 OR filename ILIKE $5)
		AND (cardinality($6::text[]) = 0 OR corpus_id = ANY($6::text[]))`
	const filterArgs = 6
	where := filters
	if req.GetStatus() != "" {
		args = append(args, req.GetStatus())
		where += fmt.Sprintf(" AND status = $%d", len(args))
	}
	if after := req.GetAfter(); len(after) > 0 {
		var ors []string
		for i, k := range keys {
			var ands []string
			for j := range i {
				args = append(args, after[j])
				ands = append(ands, fmt.Sprintf("%s = $%d::%s", keys[j].GetField(), len(args), sortable[keys[j].GetField()]))
			}
			op := ">"
			if k.GetDescending() {
				op = "<"
			}
			args = append(args, after[i])
			ands = append(ands, fmt.Sprintf("%s %s $%d::%s", k.GetField(), op, len(args), sortable[k.GetField()]))
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		where += " AND (" + strings.Join(ors, " OR ") + ")"
	}
	var order []string
	for _, k := range keys {
		dir := "ASC"
		if k.GetDescending() {
			dir = "DESC"
		}
		order = append(order, k.GetField()+" "+dir)
	}
	args = append(args, limit+1)
	rows, err := s.store.pool.Query(ctx, `SELECT `+documentColumns+` FROM ingest.documents WHERE `+where+
		` ORDER BY `+strings.Join(order, ", ")+fmt.Sprintf(" LIMIT $%d", len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("query documents: %w", err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Document, error) { return scanDocument(r) })
	if err != nil {
		return nil, fmt.Errorf("query documents: %w", err)
	}
	out := &ingestv1.QueryDocumentsResponse{StatusCounts: map[string]int32{}}
	if len(docs) > limit {
		docs, out.HasMore = docs[:limit], true
	}
	for _, d := range docs {
		out.Documents = append(out.Documents, documentProto(d))
	}
	if len(docs) > 0 {
		last := docs[len(docs)-1]
		for _, k := range keys {
			out.Last = append(out.Last, keyOf(last, k.GetField()))
		}
	}
	counts, err := s.store.pool.Query(ctx, `SELECT status, count(*) FROM ingest.documents WHERE `+filters+` GROUP BY status`, args[:filterArgs]...)
	if err != nil {
		return nil, fmt.Errorf("count documents: %w", err)
	}
	for counts.Next() {
		var st string
		var n int32
		if err := counts.Scan(&st, &n); err != nil {
			return nil, err
		}
		out.StatusCounts[st] = n
	}
	return out, counts.Err()
}

func invalidAfter() error {
	return apierr.New(codes.InvalidArgument, CodeInvalidPageToken, "the cursor does not belong to this sort; start again without it", "field", "cursor")
}

func nullTimestamp(t *timestamppb.Timestamp) *time.Time {
	if t == nil {
		return nil
	}
	v := t.AsTime()
	return &v
}

// likePattern is q as an ILIKE substring pattern ("" for none), its wildcards escaped.
func likePattern(q string) string {
	if q == "" {
		return ""
	}
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(q) + "%"
}

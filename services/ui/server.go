// Package ui is the backend for web front ends (nexusrag.ui.v1.UIService): one call per
// screen, normalized shapes, and lists that share one set of query conventions (q, sort,
// limit, signed cursor, filters, facets). It owns no data but its action records; it
// asks the services that own the rest, as the caller.
package ui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	uiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ui/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/quota"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/services/ingest"
)

// CodeInvalidCursor answers a cursor that was not issued for this list, tenant, filters
// and sort, or was changed.
const CodeInvalidCursor = "INVALID_CURSOR"

const (
	defaultLimit = 25
	maxLimit     = 100
)

// Clients are the services the BFF asks.
type Clients struct {
	Ingest     ingestv1.IngestServiceClient
	Retrieval  retrievalv1.RetrievalServiceClient
	Governance governancev1.AuditServiceClient
	Billing    billingv1.BillingServiceClient
}

// Server implements nexusrag.ui.v1.UIService.
type Server struct {
	uiv1.UnimplementedUIServiceServer
	maintenance *maintenance.Runner // nil: RunUiMaintenance answers unavailable
	store       *Store
	keys        *svcauth.Keyring
	c           Clients
	rdb         redis.UniversalClient
	prefix      string
	log         *slog.Logger
}

// NewServer returns the UIService: keys sign its cursors, rdb (under prefix) holds the
// live request counters.
func NewServer(store *Store, keys *svcauth.Keyring, c Clients, rdb redis.UniversalClient, prefix string, log *slog.Logger) *Server {
	return &Server{store: store, keys: keys, c: c, rdb: rdb, prefix: prefix, log: log}
}

// GetBootstrap is who the caller is, the plan and features, corpora and limits.
func (s *Server) GetBootstrap(ctx context.Context, _ *uiv1.GetBootstrapRequest) (*uiv1.GetBootstrapResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	ent, err := s.c.Billing.GetEntitlements(ctx, &billingv1.GetEntitlementsRequest{TenantId: p.TenantID})
	if err != nil {
		return nil, err
	}
	corpora, err := s.c.Retrieval.ListCorpora(ctx, &retrievalv1.ListCorporaRequest{})
	if err != nil {
		return nil, err
	}
	out := &uiv1.GetBootstrapResponse{TenantId: p.TenantID, KeyId: p.KeyID, Role: principal.RoleName(p.Role), PlanId: ent.GetEntitlements().GetPlanId(),
		Features: ent.GetEntitlements().GetFeatures(), Limits: limitsOf(ent.GetEntitlements().GetQuota())}
	for _, c := range corpora.GetCorpora() {
		out.Corpora = append(out.Corpora, &uiv1.Corpus{CorpusId: c.GetCorpusId(), Name: c.GetName(), Provider: c.GetProvider()})
	}
	return out, nil
}

func limitsOf(q *billingv1.Quota) *uiv1.Limits {
	return &uiv1.Limits{DailyRequestsLimit: q.GetDailyRequestsLimit(), MonthlyRequestsLimit: q.GetMonthlyRequestsLimit(), MaxPageSize: maxLimit}
}

// GetDashboardSummary counts the tenant's documents, corpora and requests.
func (s *Server) GetDashboardSummary(ctx context.Context, _ *uiv1.GetDashboardSummaryRequest) (*uiv1.GetDashboardSummaryResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	docs, err := s.c.Ingest.QueryDocuments(ctx, &ingestv1.QueryDocumentsRequest{Limit: 1})
	if err != nil {
		return nil, err
	}
	corpora, err := s.c.Retrieval.ListCorpora(ctx, &retrievalv1.ListCorporaRequest{})
	if err != nil {
		return nil, err
	}
	ent, err := s.c.Billing.GetEntitlements(ctx, &billingv1.GetEntitlementsRequest{TenantId: p.TenantID})
	if err != nil {
		return nil, err
	}
	out := &uiv1.GetDashboardSummaryResponse{DocumentsByStatus: docs.GetStatusCounts(), Corpora: int32(len(corpora.GetCorpora())),
		Limits: limitsOf(ent.GetEntitlements().GetQuota())}
	for _, n := range docs.GetStatusCounts() {
		out.DocumentsTotal += n
	}
	if used, err := quota.Read(ctx, s.rdb, s.prefix, p.TenantID, time.Now()); err == nil {
		out.RequestsToday, out.RequestsThisMonth = used.Day, used.Month
	} else {
		s.log.WarnContext(ctx, "request counters unreadable; the dashboard shows none", "error", err)
	}
	return out, nil
}

// documentStatuses are the values of the status filter.
var documentStatuses = []string{ingest.StatusQueued, ingest.StatusProcessing, ingest.StatusSucceeded, ingest.StatusFailed, "deleting"}

// ListDocuments lists the tenant's documents.
func (s *Server) ListDocuments(ctx context.Context, req *uiv1.ListDocumentsRequest) (*uiv1.ListDocumentsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := limitOf(req.GetLimit())
	if err != nil {
		return nil, err
	}
	keys, err := sortOf(req.GetSort(), ingest.SortFields())
	if err != nil {
		return nil, err
	}
	if req.GetStatus() != "" && !slices.Contains(documentStatuses, req.GetStatus()) {
		return nil, apierr.InvalidArgument("status", "status must be one of "+strings.Join(documentStatuses, ", "))
	}
	from, to, err := createdRange(req.GetCreatedFrom(), req.GetCreatedTo())
	if err != nil {
		return nil, err
	}
	binding := bindingOf("documents", p.TenantID, req.GetQ(), req.GetSort(), req.GetStatus(), req.GetCorpusId(), req.GetCreatedFrom(), req.GetCreatedTo())
	after, err := s.openCursor(req.GetCursor(), binding)
	if err != nil {
		return nil, err
	}
	res, err := s.c.Ingest.QueryDocuments(ctx, &ingestv1.QueryDocumentsRequest{Q: req.GetQ(), Sort: keys, Limit: int32(limit), After: after,
		Status: req.GetStatus(), CorpusId: req.GetCorpusId(), CreatedFrom: from, CreatedTo: to})
	if err != nil {
		return nil, err
	}
	out := &uiv1.ListDocumentsResponse{Page: &uiv1.Page{HasMore: res.GetHasMore()}, Facets: &uiv1.DocumentFacets{}}
	for _, d := range res.GetDocuments() {
		out.Items = append(out.Items, &uiv1.DocumentItem{DocumentId: d.GetDocumentId(), CorpusId: d.GetCorpusId(), Filename: d.GetFilename(),
			Status: d.GetStatus(), FailureReason: d.GetFailureReason(), SizeBytes: d.GetSizeBytes(), ChunkCount: d.GetChunkCount(),
			CreatedAt: d.GetCreatedAt(), UpdatedAt: d.GetUpdatedAt()})
	}
	if res.GetHasMore() {
		out.Page.NextCursor = s.sealCursor(binding, res.GetLast())
	}
	for _, st := range documentStatuses {
		if n := res.GetStatusCounts()[st]; n > 0 {
			out.Facets.Status = append(out.Facets.Status, &uiv1.FacetValue{Value: st, Count: n})
		}
	}
	return out, nil
}

// ListActivity lists the tenant's audit events, newest first.
func (s *Server) ListActivity(ctx context.Context, req *uiv1.ListActivityRequest) (*uiv1.ListActivityResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := limitOf(req.GetLimit())
	if err != nil {
		return nil, err
	}
	if sort := req.GetSort(); sort != "" && sort != "-created_at" {
		return nil, apierr.InvalidArgument("sort", "activity sorts on -created_at only (newest first)")
	}
	if req.GetActorType() != "" && !audit.KnownActorType(req.GetActorType()) {
		return nil, apierr.InvalidArgument("actor_type", "actor_type must be api_key, system, cli or anonymous")
	}
	from, to, err := createdRange(req.GetCreatedFrom(), req.GetCreatedTo())
	if err != nil {
		return nil, err
	}
	binding := bindingOf("activity", p.TenantID, req.GetSort(), req.GetEventType(), req.GetActorType(), req.GetCreatedFrom(), req.GetCreatedTo())
	after, err := s.openCursor(req.GetCursor(), binding)
	if err != nil {
		return nil, err
	}
	inner := ""
	if len(after) == 1 {
		inner = after[0]
	}
	res, err := s.c.Governance.ListAuditEvents(ctx, &governancev1.ListAuditEventsRequest{EventType: req.GetEventType(), ActorType: req.GetActorType(),
		StartTime: from, EndTime: to, Limit: int32(limit), Cursor: inner})
	if err != nil {
		return nil, err
	}
	out := &uiv1.ListActivityResponse{Page: &uiv1.Page{HasMore: res.GetNextCursor() != ""}, Facets: &uiv1.ActivityFacets{}}
	for _, e := range res.GetEvents() {
		if !eventInScope(p, e) {
			continue
		}
		out.Items = append(out.Items, &uiv1.ActivityItem{Id: e.GetId(), CreatedAt: e.GetOccurredAt(), EventType: e.GetEventType(), Outcome: e.GetOutcome(),
			ActorType: e.GetActorType(), ActorId: e.GetActorId(), ResourceType: e.GetResourceType(), ResourceId: e.GetResourceId(), RequestId: e.GetRequestId()})
	}
	if res.GetNextCursor() != "" {
		out.Page.NextCursor = s.sealCursor(binding, []string{res.GetNextCursor()})
	}
	return out, nil
}

// eventInScope hides from a scoped key the events about corpora beyond its scope: a
// corpus event names it as its resource, a document or run event in its corpus_id.
// A page may then hold fewer items than limit; the cursor still walks every event.
func eventInScope(p principal.Principal, e *governancev1.AuditEvent) bool {
	if !p.Scoped() {
		return true
	}
	if e.GetResourceType() == "corpus" && !p.AllowsCorpus(e.GetResourceId()) {
		return false
	}
	if c, ok := e.GetMetadata().GetFields()["corpus_id"]; ok {
		if id := c.GetStringValue(); id != "" && !p.AllowsCorpus(id) {
			return false
		}
	}
	return true
}

// ReindexDocument queues a reindex and records the action.
func (s *Server) ReindexDocument(ctx context.Context, req *uiv1.ReindexDocumentRequest) (*uiv1.ReindexDocumentResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetDocumentId() == "" {
		return nil, apierr.InvalidArgument("document_id", "document_id is required")
	}
	if _, err := s.c.Ingest.ReindexDocument(ctx, &ingestv1.ReindexDocumentRequest{DocumentId: req.GetDocumentId()}); err != nil {
		return nil, err
	}
	a, err := s.store.Record(ctx, action{id: uuid.Must(uuid.NewV7()).String(), tenant: p.TenantID, kind: "reindex-document", entity: "document",
		entityID: req.GetDocumentId(), actor: p.KeyID})
	if err != nil {
		return nil, err
	}
	return &uiv1.ReindexDocumentResponse{ActionId: a.id, Status: "accepted", AcceptedAt: timestamppb.New(a.acceptedAt),
		Optimistic: &uiv1.Optimistic{Entity: "document", Id: req.GetDocumentId(), Patch: &uiv1.DocumentPatch{Status: ingest.StatusQueued}},
		PollUrl:    "/v1/documents/" + req.GetDocumentId()}, nil
}

func limitOf(n int32) (int, error) {
	switch {
	case n == 0:
		return defaultLimit, nil
	case n < 1 || n > maxLimit:
		return 0, apierr.InvalidArgument("limit", fmt.Sprintf("limit must be 1 to %d", maxLimit))
	}
	return int(n), nil
}

// sortOf parses "-created_at,name": fields among allowed, - for descending, each once.
func sortOf(sort string, allowed []string) ([]*ingestv1.SortKey, error) {
	if sort == "" {
		return nil, nil
	}
	var keys []*ingestv1.SortKey
	seen := map[string]bool{}
	for f := range strings.SplitSeq(sort, ",") {
		f = strings.TrimSpace(f)
		desc := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		if !slices.Contains(allowed, f) || seen[f] {
			return nil, apierr.InvalidArgument("sort", fmt.Sprintf("sort is a comma list of %s, each once, - for descending", strings.Join(allowed, ", ")))
		}
		seen[f] = true
		keys = append(keys, &ingestv1.SortKey{Field: f, Descending: desc})
	}
	return keys, nil
}

// createdRange parses the created_from and created_to filters.
func createdRange(from, to string) (*timestamppb.Timestamp, *timestamppb.Timestamp, error) {
	f, err := timeParam("created_from", from)
	if err != nil {
		return nil, nil, err
	}
	t, err := timeParam("created_to", to)
	return f, t, err
}

// timeParam parses an RFC 3339 time (nil when empty).
func timeParam(name, v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, apierr.InvalidArgument(name, name+" must be an RFC 3339 time, e.g. 2026-11-29T00:00:00Z")
	}
	return timestamppb.New(t), nil
}

// bindingOf is what a cursor is for: the list, the tenant, and every parameter but the
// cursor and limit (a page may change size).
func bindingOf(parts ...string) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// cursorBody is what a cursor carries.
type cursorBody struct {
	Binding string   `json:"b"`
	After   []string `json:"a"`
}

// sealCursor signs the position after with the service keys: body.mac.kid, base64url.
func (s *Server) sealCursor(binding string, after []string) string {
	body, _ := json.Marshal(cursorBody{Binding: binding, After: after})
	mac, kid := s.keys.MAC("ui-cursor", body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac) + "." + kid
}

// openCursor checks a cursor's signature and binding and returns its position (nil for
// no cursor).
func (s *Server) openCursor(cursor, binding string) ([]string, error) {
	if cursor == "" {
		return nil, nil
	}
	invalid := apierr.New(codes.InvalidArgument, CodeInvalidCursor, "cursor is not one this list issued for these filters; start again without it",
		"field", "cursor")
	parts := strings.Split(cursor, ".")
	if len(parts) != 3 {
		return nil, invalid
	}
	body, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	mac, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || !s.keys.CheckMAC("ui-cursor", body, mac, parts[2]) {
		return nil, invalid
	}
	var c cursorBody
	if json.Unmarshal(body, &c) != nil || c.Binding != binding || len(c.After) == 0 {
		return nil, invalid
	}
	return c.After, nil
}

// WithMaintenance sets the runner of this service's maintenance tasks.
func (s *Server) WithMaintenance(r *maintenance.Runner) *Server {
	s.maintenance = r
	return s
}

// RunUiMaintenance runs one of this service's maintenance tasks now (internal: ops).
func (s *Server) RunUiMaintenance(ctx context.Context, req *uiv1.RunUiMaintenanceRequest) (*uiv1.RunUiMaintenanceResponse, error) {
	run, err := s.maintenance.OnDemand(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &uiv1.RunUiMaintenanceResponse{Run: run}, nil
}

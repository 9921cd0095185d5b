package governance

import (
	"context"
	"log/slog"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redact"
)

// Server implements nexusrag.governance.v1.AuditService.
type Server struct {
	governancev1.UnimplementedAuditServiceServer
	maintenance *maintenance.Runner // nil: RunAuditMaintenance answers unavailable
	store       *Store
	log         *slog.Logger
}

// NewServer returns the AuditService implementation.
func NewServer(store *Store, log *slog.Logger) *Server { return &Server{store: store, log: log} }

// RecordEvents validates, redacts (again: callers already do) and stores a batch.
func (s *Server) RecordEvents(ctx context.Context, req *governancev1.RecordEventsRequest) (*governancev1.RecordEventsResponse, error) {
	events := req.GetEvents()
	if err := validateEvents(events); err != nil {
		return nil, err
	}
	if len(events) == 0 {
		return &governancev1.RecordEventsResponse{}, nil
	}
	for _, e := range events {
		e.Metadata = redact.Struct(e.GetMetadata())
	}
	n, err := s.store.Insert(ctx, events)
	if err != nil {
		return nil, err
	}
	return &governancev1.RecordEventsResponse{Recorded: int32(n)}, nil
}

// ListAuditEvents lists the caller's tenant's events, newest first.
func (s *Server) ListAuditEvents(ctx context.Context, req *governancev1.ListAuditEventsRequest) (*governancev1.ListAuditEventsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	q, err := listQuery(req)
	if err != nil {
		return nil, err
	}
	events, err := s.store.List(ctx, p.TenantID, q)
	if err != nil {
		return nil, err
	}
	out := &governancev1.ListAuditEventsResponse{Events: events}
	if len(events) > q.Limit {
		out.Events = events[:q.Limit]
		out.NextCursor = encodeCursor(out.Events[q.Limit-1])
	}
	return out, nil
}

// WithMaintenance sets the runner of this service's maintenance tasks.
func (s *Server) WithMaintenance(r *maintenance.Runner) *Server {
	s.maintenance = r
	return s
}

// RunAuditMaintenance runs one of this service's maintenance tasks now (internal: ops).
func (s *Server) RunAuditMaintenance(ctx context.Context, req *governancev1.RunAuditMaintenanceRequest) (*governancev1.RunAuditMaintenanceResponse, error) {
	run, err := s.maintenance.OnDemand(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &governancev1.RunAuditMaintenanceResponse{Run: run}, nil
}

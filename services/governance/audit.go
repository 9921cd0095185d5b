package governance

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/keyset"
)

// Limits of the audit API.
const (
	maxBatch     = 1000
	defaultLimit = 50
	maxLimit     = 200
	maxFieldLen  = 256
)

// CodeInvalidCursor is answered for a cursor this API did not issue.
const CodeInvalidCursor = "INVALID_CURSOR"

// cursor is the keyset position of the last event of a page.
type cursor struct {
	At time.Time `json:"t"`
	ID uuid.UUID `json:"i"`
}

func encodeCursor(e *governancev1.AuditEvent) string {
	return keyset.Encode(keyset.Position{At: e.GetOccurredAt().AsTime(), ID: uuid.MustParse(e.GetId()).String()})
}

func decodeCursor(s string) (*cursor, error) {
	p, ok := keyset.Decode(s)
	id, err := uuid.Parse(p.ID)
	if !ok || err != nil || id == uuid.Nil {
		return nil, apierr.New(codes.InvalidArgument, CodeInvalidCursor, "cursor is not one this API issued; start again without it", "field", "cursor")
	}
	return &cursor{At: p.At, ID: id}, nil
}

// validateEvents checks a RecordEvents batch.
func validateEvents(events []*governancev1.AuditEvent) error {
	if len(events) > maxBatch {
		return apierr.InvalidArgument("events", fmt.Sprintf("at most %d events per call", maxBatch))
	}
	for i, e := range events {
		field := func(name string) string { return fmt.Sprintf("events[%d].%s", i, name) }
		if _, err := uuid.Parse(e.GetId()); err != nil {
			return apierr.InvalidArgument(field("id"), "id must be a UUID")
		}
		if e.GetOccurredAt() == nil || !e.GetOccurredAt().IsValid() {
			return apierr.InvalidArgument(field("occurred_at"), "occurred_at is required")
		}
		if !audit.KnownType(e.GetEventType()) {
			return apierr.InvalidArgument(field("event_type"), fmt.Sprintf("unknown event type %q", e.GetEventType()))
		}
		outcome, ok := audit.NormalizeOutcome(e.GetOutcome())
		if !ok {
			return apierr.InvalidArgument(field("outcome"), "outcome must be success or failure")
		}
		e.Outcome = outcome
		if !audit.KnownActorType(e.GetActorType()) {
			return apierr.InvalidArgument(field("actor_type"), "actor_type must be api_key, system, cli or anonymous")
		}
		for name, v := range map[string]string{"tenant_id": e.GetTenantId(), "actor_id": e.GetActorId(), "resource_type": e.GetResourceType(),
			"resource_id": e.GetResourceId(), "request_id": e.GetRequestId(), "client_ip": e.GetClientIp()} {
			if len(v) > maxFieldLen {
				return apierr.InvalidArgument(field(name), fmt.Sprintf("at most %d bytes", maxFieldLen))
			}
		}
	}
	return nil
}

// listQuery validates a ListAuditEvents request.
func listQuery(req *governancev1.ListAuditEventsRequest) (ListQuery, error) {
	q := ListQuery{EventType: req.GetEventType(), Outcome: req.GetOutcome(), Actor: req.GetActor(), ActorType: req.GetActorType(), Limit: int(req.GetLimit())}
	switch {
	case q.Limit == 0:
		q.Limit = defaultLimit
	case q.Limit < 1 || q.Limit > maxLimit:
		return q, apierr.InvalidArgument("limit", fmt.Sprintf("limit must be 1 to %d", maxLimit))
	}
	if q.ActorType != "" && !audit.KnownActorType(q.ActorType) {
		return q, apierr.InvalidArgument("actor_type", "actor_type must be api_key, system, cli or anonymous")
	}
	if q.EventType != "" && !audit.KnownType(q.EventType) {
		return q, apierr.InvalidArgument("event_type", fmt.Sprintf("unknown event type %q", q.EventType))
	}
	if q.Outcome != "" {
		outcome, ok := audit.NormalizeOutcome(q.Outcome)
		if !ok {
			return q, apierr.InvalidArgument("outcome", "outcome must be success or failure")
		}
		q.Outcome = outcome
	}
	if len(q.Actor) > maxFieldLen {
		return q, apierr.InvalidArgument("actor", fmt.Sprintf("at most %d bytes", maxFieldLen))
	}
	if t := req.GetStartTime(); t != nil {
		q.Start = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		q.End = t.AsTime()
	}
	if !q.Start.IsZero() && !q.End.IsZero() && !q.Start.Before(q.End) {
		return q, apierr.InvalidArgument("start_time", "start_time must be before end_time")
	}
	if req.GetCursor() != "" {
		c, err := decodeCursor(req.GetCursor())
		if err != nil {
			return q, err
		}
		q.After = c
	}
	return q, nil
}

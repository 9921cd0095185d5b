// Package dataowner is the owners' half of the data-owner contract of
// nexusrag.governance.v1 (data.proto): the services that own rows about tenants answer
// governance's Select and Purge calls for their own tables, so that one service owns each
// table. It checks the calls' shapes the same way in every owner.
package dataowner

import (
	"fmt"
	"slices"
	"strings"
	"time"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Subject types a DSAR names.
const (
	SubjectSession  = "session"
	SubjectUserKey  = "user_key"
	SubjectDocument = "document"
	SubjectTenant   = "tenant"
)

// SubjectTypes are the subjects a query may name.
var SubjectTypes = []string{SubjectSession, SubjectUserKey, SubjectDocument, SubjectTenant}

// MaxPage is the most items a Select answers.
const MaxPage = 1000

// MaxPurge is the most ids one Purge takes.
const MaxPurge = 1000

// Query is a checked DataQuery.
type Query struct {
	Tenant, Category string
	// OlderThan is set for a retention query, Subject for a DSAR.
	OlderThan   *time.Time
	SubjectType string
	SubjectID   string
	AfterID     string
	Limit       int
	WithRows    bool
}

// CheckQuery validates q for an owner of categories.
func CheckQuery(q *governancev1.DataQuery, categories []string) (Query, error) {
	out := Query{Tenant: q.GetTenantId(), Category: q.GetCategory(), SubjectType: q.GetSubjectType(), SubjectID: q.GetSubjectId(),
		AfterID: q.GetAfterId(), Limit: int(q.GetLimit()), WithRows: q.GetWithRows()}
	switch {
	case out.Tenant == "":
		return out, apierr.InvalidArgument("tenant_id", "tenant_id is required")
	case !slices.Contains(categories, out.Category):
		return out, apierr.InvalidArgument("category", fmt.Sprintf("category must be one of %s", strings.Join(categories, ", ")))
	case out.Limit < 1 || out.Limit > MaxPage:
		return out, apierr.InvalidArgument("limit", fmt.Sprintf("limit must be 1 to %d", MaxPage))
	case (q.GetOlderThan() == nil) == (out.SubjectType == ""):
		return out, apierr.InvalidArgument("older_than", "set exactly one of older_than (retention) and subject_type (DSAR)")
	case out.SubjectType != "" && !slices.Contains(SubjectTypes, out.SubjectType):
		return out, apierr.InvalidArgument("subject_type", "subject_type must be session, user_key, document or tenant")
	case out.SubjectType != "" && out.SubjectID == "":
		return out, apierr.InvalidArgument("subject_id", "subject_id is required")
	case out.SubjectType == SubjectTenant && out.SubjectID != out.Tenant:
		return out, apierr.InvalidArgument("subject_id", "a tenant subject is the query's own tenant")
	}
	if t := q.GetOlderThan(); t != nil {
		c := t.AsTime()
		out.OlderThan = &c
	}
	return out, nil
}

// CheckPurge validates p for an owner of categories.
func CheckPurge(p *governancev1.DataPurge, categories []string) error {
	switch {
	case p.GetTenantId() == "":
		return apierr.InvalidArgument("tenant_id", "tenant_id is required")
	case !slices.Contains(categories, p.GetCategory()):
		return apierr.InvalidArgument("category", fmt.Sprintf("category must be one of %s", strings.Join(categories, ", ")))
	case len(p.GetIds()) > MaxPurge:
		return apierr.InvalidArgument("ids", fmt.Sprintf("at most %d ids per purge", MaxPurge))
	case p.GetMode() != governancev1.PurgeMode_PURGE_MODE_DELETE && p.GetMode() != governancev1.PurgeMode_PURGE_MODE_ANONYMIZE:
		return apierr.InvalidArgument("mode", "mode must be PURGE_MODE_DELETE or PURGE_MODE_ANONYMIZE")
	}
	return nil
}

// Scope is the hold scope of one thing.
func Scope(scopeType, id string) []*governancev1.HoldScope {
	return []*governancev1.HoldScope{{ScopeType: scopeType, ScopeId: id}}
}

// Selection is a page of items: a full page names the last id to continue after.
func Selection(items []*governancev1.DataItem, limit int) *governancev1.DataSelection {
	sel := &governancev1.DataSelection{Items: items}
	if len(items) == limit && limit > 0 {
		sel.NextAfterId = items[len(items)-1].GetId()
	}
	return sel
}

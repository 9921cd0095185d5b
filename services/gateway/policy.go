package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/follow"
	"github.com/nexusrag/nexusrag/pkg/policy"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// policyAdminRoute is where a tenant manages its rules: never subject to them, so a bad
// rule can always be fixed.
const policyAdminRoute = "/v1/admin/governance/policies"

// Policies holds every tenant's enabled rules in evaluation order, following
// governance's revision: a request costs a map lookup and the rules' evaluation, no query.
type Policies struct {
	client   governancev1.PolicyServiceClient
	log      *slog.Logger
	rules    atomic.Pointer[map[string][]policy.Rule]
	revision int64
}

// NewPolicies is a cache over governance's PolicyService; call Run to follow it.
func NewPolicies(client governancev1.PolicyServiceClient, log *slog.Logger) *Policies {
	p := &Policies{client: client, log: log}
	p.rules.Store(&map[string][]policy.Rule{})
	return p
}

// Sync fetches the rules when they changed.
func (p *Policies) Sync(ctx context.Context) error {
	res, err := p.client.GetPolicySnapshot(ctx, &governancev1.GetPolicySnapshotRequest{KnownRevision: p.revision})
	if err != nil || !res.GetChanged() {
		return err
	}
	byTenant := map[string][]policy.Rule{}
	for _, pr := range res.GetPolicies() {
		c, a, err := policy.FromProto(pr.GetConditionJson(), pr.GetActionJson())
		if err != nil {
			p.log.WarnContext(ctx, "policy rule not understood; skipped", "tenant_id", pr.GetTenantId(), "rule_key", pr.GetRuleKey(), "error", err)
			continue
		}
		byTenant[pr.GetTenantId()] = append(byTenant[pr.GetTenantId()], policy.Rule{ID: pr.GetPolicyId(), Key: pr.GetRuleKey(),
			Priority: pr.GetPriority(), Condition: c, Action: a})
	}
	for _, rules := range byTenant {
		policy.Sort(rules)
	}
	p.rules.Store(&byTenant)
	p.revision = res.GetRevision()
	return nil
}

// Run syncs every interval until ctx ends; while governance is unreachable the last
// rules stay (logged once).
func (p *Policies) Run(ctx context.Context, interval time.Duration) {
	follow.Run(ctx, interval, p.log, "policy rules", p.Sync)
}

// Middleware evaluates the tenant's rules after authentication: a deny answers its
// code (403) naming the rule, audited (sampled per tenant and rule).
func (p *Policies) Middleware(rec Recorder, sampler *audit.Sampler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, ok := principal.From(r.Context())
		rules := (*p.rules.Load())[pr.TenantID]
		if !ok || len(rules) == 0 || strings.HasPrefix(r.URL.Path, policyAdminRoute) {
			next.ServeHTTP(w, r)
			return
		}
		ip, _ := netip.ParseAddr(clientIP(r))
		rule, matched := policy.Evaluate(rules, policy.Request{Method: r.Method, Path: r.URL.Path, Role: principal.RoleName(pr.Role), KeyID: pr.KeyID, ClientIP: ip})
		if !matched || rule.Action.Type == "allow" {
			next.ServeHTTP(w, r)
			return
		}
		if ok, suppressed := sampler.Allow(pr.TenantID+"/"+rule.Key, time.Now()); ok {
			rec.Record(r.Context(), audit.Event{Type: audit.TypePolicyDenied, Outcome: audit.OutcomeFailure, ResourceType: "policy", ResourceID: rule.Key,
				Metadata: map[string]any{"method": r.Method, "path": r.URL.Path, "code": rule.Action.Code, "suppressed": suppressed}})
		}
		writeError(w, r, policy.Denied(rule))
	})
}

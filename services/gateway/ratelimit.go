package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/quota"
)

// Codes of the rate limiter.
const (
	CodeRateLimited            = "RATE_LIMITED"
	CodeRateLimiterUnavailable = "RATE_LIMIT_UNAVAILABLE"
)

// Route classes of the rate limiter.
const (
	ClassRun      = "run"
	ClassMutation = "mutation"
	ClassRead     = "read"
	ClassOps      = "ops"
)

// Bucket is a token bucket: Rate tokens per second, at most Burst. Its text form is
// "rate/burst" (for example RL_RUN_KEY=1/5).
type Bucket struct {
	Rate  float64
	Burst int
}

// UnmarshalText parses "rate/burst".
func (b *Bucket) UnmarshalText(text []byte) error {
	rate, burst, ok := strings.Cut(string(text), "/")
	r, err1 := strconv.ParseFloat(strings.TrimSpace(rate), 64)
	n, err2 := strconv.Atoi(strings.TrimSpace(burst))
	if !ok || err1 != nil || err2 != nil || r <= 0 || n < 1 {
		return fmt.Errorf("want rate/burst with rate > 0 and burst >= 1, for example 1/5; got %q", text)
	}
	b.Rate, b.Burst = r, n
	return nil
}

// ClassLimits are one route class's buckets, per API key and per tenant.
type ClassLimits struct{ Key, Tenant Bucket }

// routeClass sorts a request into its rate-limit class by method and route template.
func routeClass(method, template string) string {
	switch {
	case template == runRoute:
		return ClassRun
	case strings.HasPrefix(template, "/v1/ops/") || strings.HasPrefix(template, "/v1/audit/events"):
		return ClassOps
	case strings.HasPrefix(template, "/v1/admin/quotas"):
		return ClassMutation
	case method == http.MethodGet || method == http.MethodHead:
		return ClassRead
	}
	return ClassMutation
}

// admissionScript admits one request in one round trip: it debits a token from both
// buckets (API key, tenant) or from neither, and counts the request against the tenant's
// quotas (hour, day, month). Time for the buckets comes from Redis, so replicas with
// skewed clocks agree; the counters' periods come from the caller (UTC).
//
// KEYS: 1 key bucket, 2 tenant bucket, 3 hour, 4 day, 5 month, 6 day soft-cap mark,
// 7 month soft-cap mark.
// ARGV: 1-4 key rate, key burst, tenant rate, tenant burst (rate 0: no buckets);
// 5 cost (0: no quotas), 6 daily limit, 7 monthly limit, 8 soft-cap ratio, 9 hard cap
// (1 or 0), 10-12 TTL in ms of the hour, day and month keys.
//
// It returns {status, retry_after_ms, scope, day_used, month_used, soft_day, soft_month,
// period}: status 1 admitted, 0 rate limited (scope says which bucket), 2 over a hard
// cap (period says which; nothing counted, no token spent). soft_day and soft_month are 1
// when this request crossed a soft cap first in its period.
var admissionScript = redis.NewScript(`
local kr, kb, tr, tb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local k, tn, now = 0, 0, 0
if kr > 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local function level(key, rate, burst)
    local v = redis.call('HMGET', key, 'tokens', 'ts')
    local tokens, ts = tonumber(v[1]), tonumber(v[2])
    if tokens == nil then return burst end
    return math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  end
  k, tn = level(KEYS[1], kr, kb), level(KEYS[2], tr, tb)
  if k < 1 or tn < 1 then
    local wk, wt = 0, 0
    if k < 1 then wk = math.ceil((1 - k) * 1000 / kr) end
    if tn < 1 then wt = math.ceil((1 - tn) * 1000 / tr) end
    if wk >= wt then return {0, wk, 'api_key', 0, 0, 0, 0, ''} end
    return {0, wt, 'tenant', 0, 0, 0, 0, ''}
  end
end
local day, month, softDay, softMonth = 0, 0, 0, 0
if cost > 0 then
  local dayLimit, monthLimit, ratio, hard = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9] == '1'
  -- Count first and take it back when over a hard cap: the common path is three INCRBY,
  -- with a PEXPIRE only for a counter the INCRBY just created.
  day, month = redis.call('INCRBY', KEYS[4], cost), redis.call('INCRBY', KEYS[5], cost)
  if hard and (month > monthLimit or day > dayLimit) then
    day, month = redis.call('DECRBY', KEYS[4], cost), redis.call('DECRBY', KEYS[5], cost)
    redis.call('PEXPIRE', KEYS[4], ARGV[11]) -- the INCRBY may have created them
    redis.call('PEXPIRE', KEYS[5], ARGV[12])
    local period = 'day'
    if month + cost > monthLimit then period = 'month' end
    return {2, 0, '', day, month, 0, 0, period}
  end
  if day == cost then redis.call('PEXPIRE', KEYS[4], ARGV[11]) end
  if month == cost then redis.call('PEXPIRE', KEYS[5], ARGV[12]) end
  if redis.call('INCRBY', KEYS[3], cost) == cost then redis.call('PEXPIRE', KEYS[3], ARGV[10]) end
  if day >= ratio * dayLimit and redis.call('SET', KEYS[6], '1', 'NX', 'PX', ARGV[11]) then softDay = 1 end
  if month >= ratio * monthLimit and redis.call('SET', KEYS[7], '1', 'NX', 'PX', ARGV[12]) then softMonth = 1 end
end
if kr > 0 then
  redis.call('HSET', KEYS[1], 'tokens', k - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(kb * 1000 / kr) + 1000)
  redis.call('HSET', KEYS[2], 'tokens', tn - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(tb * 1000 / tr) + 1000)
end
return {1, 0, '', day, month, softDay, softMonth, ''}
`)

// QuotaSource gives a tenant's quotas (the entitlement cache, fed by billing).
type QuotaSource interface {
	Quota(ctx context.Context, tenant string) (*billingv1.Quota, error)
}

// QuotaReporter tells billing about a soft cap a tenant crossed (audit and webhook).
type QuotaReporter interface {
	ReportQuotaEvent(ctx context.Context, req *billingv1.ReportQuotaEventRequest, opts ...grpc.CallOption) (*billingv1.ReportQuotaEventResponse, error)
}

// RateLimitOptions configure a RateLimiter: rate limits, quotas, or both.
type RateLimitOptions struct {
	// Limits are the token buckets per route class; empty: no rate limits.
	Limits   map[string]ClassLimits
	FailOpen bool
	// Timeout bounds the Redis call; past it the limiter fails open or closed.
	Timeout time.Duration
	// DegradedAuditInterval is the least time between two system.rate_limit.degraded events.
	DegradedAuditInterval time.Duration
	// RefusedAuditInterval samples security.rate_limited (one event per key and class per
	// interval) and the quota refusals and overages (one per tenant and period).
	RefusedAuditInterval time.Duration

	// Quotas, when set, counts every admitted request against its tenant's quotas.
	Quotas QuotaSource
	// Reports receives the soft caps crossed; nil only records them in the log.
	Reports QuotaReporter
	// QuotaFailOpen lets requests through, uncounted, when the counters cannot be read.
	QuotaFailOpen bool
	// Now is the clock of the quota periods (UTC days and months); nil is time.Now.
	Now func() time.Time
}

// RateLimiter admits requests: token buckets per API key and per tenant, and the
// tenant's request quotas, in one Redis round trip.
type RateLimiter struct {
	rdb      redis.UniversalClient
	prefix   string
	o        RateLimitOptions
	audit    Recorder
	log      *slog.Logger
	degraded *audit.Sampler
	refused  *audit.Sampler
}

// NewRateLimiter returns a limiter over rdb with keys under prefix.
func NewRateLimiter(rdb redis.UniversalClient, prefix string, o RateLimitOptions, rec Recorder, log *slog.Logger) *RateLimiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &RateLimiter{rdb: rdb, prefix: prefix, o: o, audit: rec, log: log,
		degraded: audit.NewSampler(o.DegradedAuditInterval, 16), refused: audit.NewSampler(o.RefusedAuditInterval, 100_000)}
}

// Scopes of a refusal: which bucket ran out.
const (
	ScopeAPIKey = "api_key"
	ScopeTenant = "tenant"
)

// Decision is the outcome of one check.
type Decision struct {
	Allowed    bool
	RetryAfter time.Duration
	Scope      string // api_key | tenant, when rate limited

	// Quota is the tenant's quota when the request was counted against it.
	Quota *billingv1.Quota
	// OverQuota names the period whose hard cap refused the request.
	OverQuota string
	// DayUsed and MonthUsed count the tenant's requests, this one included when admitted.
	DayUsed, MonthUsed int64
	// SoftDay and SoftMonth are set when this request crossed a soft cap first in its period.
	SoftDay, SoftMonth bool
}

// Allow checks and debits both buckets of a request of class, counting no quota.
func (l *RateLimiter) Allow(ctx context.Context, tenant, keyID, class string) (Decision, error) {
	return l.admit(ctx, tenant, keyID, class, 0, nil)
}

// admit runs the admission script: the buckets of class (when limited) and, with cost
// above 0, the tenant's quotas q.
func (l *RateLimiter) admit(ctx context.Context, tenant, keyID, class string, cost int64, q *billingv1.Quota) (Decision, error) {
	lim, limited := l.o.Limits[class]
	if !limited && cost == 0 {
		return Decision{Allowed: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	// One hash tag per tenant keeps every key in one Redis Cluster slot.
	base := l.prefix + "rl:{" + tenant + "}:" + class
	qk := quota.KeysAt(l.prefix, tenant, l.o.Now())
	args := []any{lim.Key.Rate, lim.Key.Burst, lim.Tenant.Rate, lim.Tenant.Burst, cost, 0, 0, 0, 0,
		qk.HourTTL.Milliseconds(), qk.DayTTL.Milliseconds(), qk.MonthTTL.Milliseconds()}
	if cost > 0 {
		hard := 0
		if q.GetHardCapEnabled() {
			hard = 1
		}
		args[5], args[6], args[7], args[8] = q.GetDailyRequestsLimit(), q.GetMonthlyRequestsLimit(), q.GetSoftCapRatio(), hard
	}
	res, err := admissionScript.Run(ctx, l.rdb, []string{base + ":key:" + keyID, base + ":tenant", qk.Hour, qk.Day, qk.Month, qk.SoftDay, qk.SoftMonth},
		args...).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("admission check: %w", err)
	}
	if len(res) != 8 {
		return Decision{}, fmt.Errorf("admission check: unexpected reply %v", res)
	}
	status, _ := res[0].(int64)
	wait, _ := res[1].(int64)
	d := Decision{Allowed: status == 1, RetryAfter: time.Duration(wait) * time.Millisecond}
	d.Scope, _ = res[2].(string)
	d.DayUsed, _ = res[3].(int64)
	d.MonthUsed, _ = res[4].(int64)
	softDay, _ := res[5].(int64)
	softMonth, _ := res[6].(int64)
	d.SoftDay, d.SoftMonth = softDay == 1, softMonth == 1
	if status == 2 {
		d.OverQuota, _ = res[7].(string)
	}
	if cost > 0 {
		d.Quota = q
	}
	return d, nil
}

// uncountedRoutes are where a tenant reads and raises its quota, changes its plan and
// manages its keys: a tenant at its hard cap must still be able to get out of it.
var uncountedRoutes = []string{"/v1/admin/plans", "/v1/admin/quotas/", "/v1/admin/usage/", "/v1/self-serve/"}

// requestCost is what a request of class on the route template counts against its
// tenant's quotas: run 3, the billing routes nothing, everything else 1.
func requestCost(class, template string) int64 {
	for _, prefix := range uncountedRoutes {
		if strings.HasPrefix(template, prefix) {
			return 0
		}
	}
	if class == ClassRun {
		return quota.RunCost
	}
	return 1
}

// Middleware admits authenticated requests (it runs after authenticate); requests
// without a principal (health, docs, audio downloads) are neither limited nor counted.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal.From(r.Context())
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		route := stateOf(r.Context()).route
		class := routeClass(r.Method, route)
		var q *billingv1.Quota
		var cost int64
		var quotaErr error
		if l.o.Quotas != nil && requestCost(class, route) > 0 {
			if q, quotaErr = l.o.Quotas.Quota(r.Context(), p.TenantID); quotaErr == nil {
				cost = requestCost(class, route)
			}
		}
		d, err := l.admit(r.Context(), p.TenantID, p.KeyID, class, cost, q)
		if err == nil && quotaErr != nil {
			err = quotaErr // the buckets were checked; the quota could not be
		}
		switch {
		case err != nil:
			l.unavailable(w, r, next, err, quotaErr != nil)
		case !d.Allowed && d.OverQuota != "":
			l.overQuota(w, r, p, d)
		case !d.Allowed:
			l.refuse(w, r, p, class, d)
		default:
			if d.Quota != nil {
				l.quotaHeaders(w.Header(), d)
				l.quotaEvents(r.Context(), p.TenantID, d)
			}
			next.ServeHTTP(w, r)
		}
	})
}

// unavailable answers a request whose limits or quota could not be checked: through,
// marked degraded, where the fail modes say open; 503 otherwise.
func (l *RateLimiter) unavailable(w http.ResponseWriter, r *http.Request, next http.Handler, err error, quotaOnly bool) {
	switch {
	case !quotaOnly && !l.o.FailOpen && len(l.o.Limits) > 0:
		l.log.WarnContext(r.Context(), "rate limiter unavailable; refusing (RL_FAIL_MODE=closed)", "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, apierr.New(codes.Unavailable, CodeRateLimiterUnavailable, "the rate limiter is unavailable; retry shortly"))
	case l.o.Quotas != nil && !l.o.QuotaFailOpen:
		l.log.WarnContext(r.Context(), "quota counters unavailable; refusing (QUOTA_FAIL_MODE=closed)", "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, apierr.New(codes.Unavailable, quota.CodeQuotaUnavailable, "request quotas cannot be checked; retry shortly"))
	default:
		if len(l.o.Limits) > 0 {
			w.Header().Set("X-RateLimit-Status", "degraded")
		}
		if l.o.Quotas != nil {
			w.Header().Set("X-Quota-Status", "degraded")
		}
		l.degradedEvent(r.Context(), err)
		next.ServeHTTP(w, r)
	}
}

func (l *RateLimiter) degradedEvent(ctx context.Context, err error) {
	if ok, suppressed := l.degraded.Allow("degraded", time.Now()); ok {
		l.log.WarnContext(ctx, "rate limits or quotas unavailable; letting requests through (RL_FAIL_MODE / QUOTA_FAIL_MODE open)", "error", err)
		l.audit.Record(ctx, audit.Event{Type: audit.TypeRateLimitDegraded, Outcome: audit.OutcomeFailure, ActorType: audit.ActorSystem,
			Metadata: map[string]any{"suppressed": suppressed}})
	}
}

// refuse answers 429 in the documented shape.
func (l *RateLimiter) refuse(w http.ResponseWriter, r *http.Request, p principal.Principal, class string, d Decision) {
	ms := d.RetryAfter.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
	h.Set("X-RateLimit-Scope", d.Scope)
	h.Set("X-RateLimit-Route-Class", class)
	h.Set("X-RateLimit-Retry-After-Ms", strconv.FormatInt(ms, 10))
	writeJSON(w, http.StatusTooManyRequests, map[string]any{"detail": map[string]any{
		"code": CodeRateLimited, "message": fmt.Sprintf("too many %s requests for this %s; retry in %d ms", class, scopeNoun(d.Scope), ms),
		"scope": d.Scope, "route_class": class, "retry_after_ms": ms,
	}})
	if ok, suppressed := l.refused.Allow(p.KeyID+"/"+class, time.Now()); ok {
		l.audit.Record(r.Context(), audit.Event{Type: audit.TypeSecurityRateLimited, Outcome: audit.OutcomeFailure, ResourceType: "route",
			ResourceID: r.Method + " " + stateOf(r.Context()).route, Metadata: map[string]any{"scope": d.Scope, "route_class": class, "suppressed": suppressed}})
	}
}

func scopeNoun(scope string) string {
	if scope == ScopeAPIKey {
		return "API key"
	}
	return "tenant"
}

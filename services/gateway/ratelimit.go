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
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
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

// tokenBucketScript debits one token from both buckets (API key, tenant) or from neither,
// in one round trip. Time comes from Redis, so replicas with skewed clocks agree. It
// returns {1, 0, ""} when allowed, else {0, retry_after_ms, scope}.
// KEYS: key bucket, tenant bucket. ARGV: key rate, key burst, tenant rate, tenant burst.
var tokenBucketScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, rate, burst)
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(v[1]), tonumber(v[2])
  if tokens == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
end
local kr, kb, tr, tb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local k, tn = level(KEYS[1], kr, kb), level(KEYS[2], tr, tb)
if k < 1 or tn < 1 then
  local wk, wt = 0, 0
  if k < 1 then wk = math.ceil((1 - k) * 1000 / kr) end
  if tn < 1 then wt = math.ceil((1 - tn) * 1000 / tr) end
  if wk >= wt then return {0, wk, 'api_key'} end
  return {0, wt, 'tenant'}
end
redis.call('HSET', KEYS[1], 'tokens', k - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(kb * 1000 / kr) + 1000)
redis.call('HSET', KEYS[2], 'tokens', tn - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(tb * 1000 / tr) + 1000)
return {1, 0, ''}
`)

// RateLimitOptions configure a RateLimiter.
type RateLimitOptions struct {
	Limits   map[string]ClassLimits
	FailOpen bool
	// Timeout bounds the Redis call; past it the limiter fails open or closed.
	Timeout time.Duration
	// DegradedAuditInterval is the least time between two system.rate_limit.degraded events.
	DegradedAuditInterval time.Duration
	// RefusedAuditInterval samples security.rate_limited: one event per key and class per interval.
	RefusedAuditInterval time.Duration
}

// RateLimiter enforces token buckets per API key and per tenant, in Redis.
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
	Scope      string // api_key | tenant, when refused
}

// Allow checks and debits both buckets of a request of class.
func (l *RateLimiter) Allow(ctx context.Context, tenant, keyID, class string) (Decision, error) {
	lim, ok := l.o.Limits[class]
	if !ok {
		return Decision{Allowed: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.Timeout)
	defer cancel()
	// One hash tag per tenant keeps both keys in one Redis Cluster slot.
	base := l.prefix + "rl:{" + tenant + "}:" + class
	res, err := tokenBucketScript.Run(ctx, l.rdb, []string{base + ":key:" + keyID, base + ":tenant"},
		lim.Key.Rate, lim.Key.Burst, lim.Tenant.Rate, lim.Tenant.Burst).Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit check: %w", err)
	}
	if len(res) != 3 {
		return Decision{}, fmt.Errorf("rate limit check: unexpected reply %v", res)
	}
	allowed, _ := res[0].(int64)
	wait, _ := res[1].(int64)
	scope, _ := res[2].(string)
	return Decision{Allowed: allowed == 1, RetryAfter: time.Duration(wait) * time.Millisecond, Scope: scope}, nil
}

// Middleware enforces the limits on authenticated routes (it runs after authenticate).
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal.From(r.Context())
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		class := routeClass(r.Method, stateOf(r.Context()).route)
		d, err := l.Allow(r.Context(), p.TenantID, p.KeyID, class)
		switch {
		case err != nil && l.o.FailOpen:
			w.Header().Set("X-RateLimit-Status", "degraded")
			l.degradedEvent(r.Context(), err)
			next.ServeHTTP(w, r)
		case err != nil:
			l.log.WarnContext(r.Context(), "rate limiter unavailable; refusing (RL_FAIL_MODE=closed)", "error", err)
			w.Header().Set("Retry-After", "1")
			writeError(w, r, apierr.New(codes.Unavailable, CodeRateLimiterUnavailable, "the rate limiter is unavailable; retry shortly"))
		case !d.Allowed:
			l.refuse(w, r, p, class, d)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (l *RateLimiter) degradedEvent(ctx context.Context, err error) {
	if ok, suppressed := l.degraded.Allow("degraded", time.Now()); ok {
		l.log.WarnContext(ctx, "rate limiter unavailable; letting requests through (RL_FAIL_MODE=open)", "error", err)
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

// Package breaker is a circuit breaker whose state lives in Redis, so that every replica
// of a service sees one state per integration: closed (calls pass; consecutive failures
// are counted), open (calls fail fast until the open period ends), half-open (one probe
// call at a time decides: success closes, failure opens again).
//
// gobreaker's distributed breaker was considered: it holds a cross-replica lock for the
// whole call, which would serialize every call to an integration (ADR 0009).
package breaker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// CodeCircuitOpen is answered while an integration's breaker is open.
const CodeCircuitOpen = "CIRCUIT_OPEN"

// States.
const (
	Closed   = "closed"
	Open     = "open"
	HalfOpen = "half_open"
)

// Settings tune a breaker.
type Settings struct {
	// FailureThreshold consecutive failures open the breaker.
	FailureThreshold int
	// OpenFor is how long an open breaker fails fast before it lets a probe through.
	OpenFor time.Duration
	// ProbeTimeout is how long a half-open probe may take before another is allowed.
	ProbeTimeout time.Duration
}

// allowScript decides whether a call may go. ARGV: now (ms), open for (ms), probe lease (ms).
// Returns {allowed, state, wait ms, transition}.
var allowScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'opened', 'probe')
local state = v[1] or 'closed'
local now, openFor, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if state == 'closed' then return {1, 'closed', 0, ''} end
if state == 'open' then
  local opened = tonumber(v[2]) or 0
  if now < opened + openFor then return {0, 'open', opened + openFor - now, ''} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', now + lease)
  return {1, 'half_open', 0, 'open>half_open'}
end
local probe = tonumber(v[3]) or 0
if now < probe then return {0, 'half_open', probe - now, ''} end
redis.call('HSET', KEYS[1], 'probe', now + lease)
return {1, 'half_open', 0, ''}
`)

// recordScript records a call's outcome. ARGV: now (ms), failed (0|1), threshold.
// Returns the transition ("from>to") or "".
var recordScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'state', 'failures')
local state, failures = v[1] or 'closed', tonumber(v[2]) or 0
if ARGV[2] == '0' then
  if state ~= 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
    return state .. '>closed'
  end
  if failures > 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
  return ''
end
if state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened', ARGV[1])
  return 'half_open>open'
end
if state == 'open' then return '' end
failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened', ARGV[1], 'failures', 0)
  return 'closed>open'
end
return ''
`)

// Metrics are the breakers' Prometheus series; one set per process.
type Metrics struct {
	state       *prometheus.GaugeVec
	transitions *prometheus.CounterVec
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nexusrag_circuit_state",
			Help: "Circuit breaker state per integration: 0 closed, 1 half-open, 2 open."}, []string{"integration"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nexusrag_circuit_transitions_total",
			Help: "Circuit breaker state changes per integration."}, []string{"integration", "from", "to"}),
	}
	if reg != nil {
		reg.MustRegister(m.state, m.transitions)
	}
	return m
}

// Breaker guards one integration.
type Breaker struct {
	name    string
	key     string
	rdb     redis.UniversalClient
	s       Settings
	log     *slog.Logger
	metrics *Metrics
	// now is time.Now; tests step it.
	now func() time.Time

	warnMu   sync.Mutex
	warnedAt time.Time
}

// New returns the breaker of integration name, its state under prefix in Redis.
func New(rdb redis.UniversalClient, prefix, name string, s Settings, m *Metrics, log *slog.Logger) *Breaker {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Breaker{name: name, key: prefix + "cb:{" + name + "}", rdb: rdb, s: s, log: log, metrics: m, now: time.Now}
}

// WithClock replaces the breaker's clock (tests).
func (b *Breaker) WithClock(now func() time.Time) *Breaker { b.now = now; return b }

// Allow reports whether a call may go now. A refused call gets CIRCUIT_OPEN with the time
// to wait. When Redis cannot be asked, calls go (the breaker protects the integration,
// not itself).
func (b *Breaker) Allow(ctx context.Context) error {
	res, err := allowScript.Run(ctx, b.rdb, []string{b.key}, b.ms(b.now()), b.s.OpenFor.Milliseconds(), b.s.ProbeTimeout.Milliseconds()).Slice()
	if err != nil || len(res) != 4 {
		b.warn(ctx, "circuit breaker state unavailable; letting the call through", err)
		return nil
	}
	b.observe(ctx, res[1], res[3])
	if allowed, _ := res[0].(int64); allowed == 1 {
		return nil
	}
	wait, _ := res[2].(int64)
	return apierr.New(codes.Unavailable, CodeCircuitOpen,
		fmt.Sprintf("%s is failing; calls are paused for %d ms", b.name, wait), "integration", b.name, "retry_after_ms", fmt.Sprint(wait))
}

// Record reports a call's outcome: failed is true for failures of the integration itself
// (unreachable, timed out, 5xx), not for requests it rightly refused.
func (b *Breaker) Record(ctx context.Context, failed bool) {
	f := "0"
	if failed {
		f = "1"
	}
	res, err := recordScript.Run(ctx, b.rdb, []string{b.key}, b.ms(b.now()), f, b.s.FailureThreshold).Text()
	if err != nil {
		b.warn(ctx, "circuit breaker outcome not recorded", err)
		return
	}
	b.observe(ctx, nil, res)
}

// State returns the current state (for tests and health).
func (b *Breaker) State(ctx context.Context) (string, error) {
	s, err := b.rdb.HGet(ctx, b.key, "state").Result()
	if err == redis.Nil {
		return Closed, nil
	}
	return s, err
}

func (b *Breaker) observe(ctx context.Context, state any, transition any) {
	if s, ok := state.(string); ok {
		b.metrics.state.WithLabelValues(b.name).Set(stateValue(s))
	}
	t, _ := transition.(string)
	from, to, ok := strings.Cut(t, ">")
	if !ok {
		return
	}
	b.metrics.transitions.WithLabelValues(b.name, from, to).Inc()
	b.metrics.state.WithLabelValues(b.name).Set(stateValue(to))
	level := slog.LevelInfo
	if to == Open {
		level = slog.LevelWarn
	}
	b.log.Log(ctx, level, "circuit breaker state changed", "integration", b.name, "from", from, "to", to)
}

func (b *Breaker) warn(ctx context.Context, msg string, err error) {
	b.warnMu.Lock()
	defer b.warnMu.Unlock()
	if time.Since(b.warnedAt) > time.Minute {
		b.warnedAt = time.Now()
		b.log.WarnContext(ctx, msg, "integration", b.name, "error", err)
	}
}

func (b *Breaker) ms(t time.Time) int64 { return t.UnixMilli() }

func stateValue(s string) float64 {
	switch s {
	case HalfOpen:
		return 1
	case Open:
		return 2
	}
	return 0
}

package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/services/gateway"
)

// rateLimitSuite: GET /v1/auth/whoami through the platform (rate limiter and quotas on,
// with buckets and quotas no benchmark empties) beside a second `serve` on the same
// database with QUOTA_ENABLED=false and a third with neither (RL_ENABLED=false too),
// same clients and duration. Redis INFO commandstats read around each run count the
// admission's Redis commands per request. Then the limiter's check alone, called from Go.
func rateLimitSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	off, stopOff, err := env.serveWith("RL_ENABLED=false", "QUOTA_ENABLED=false")
	if err != nil {
		return nil, fmt.Errorf("serve without rate limiter: %w", err)
	}
	defer stopOff()
	noQuota, stopNoQuota, err := env.serveWith("QUOTA_ENABLED=false")
	if err != nil {
		return nil, fmt.Errorf("serve without quotas: %w", err)
	}
	defer stopNoQuota()
	rdb, err := env.redisClient()
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	var f rateLimitFigures
	// The Redis server is shared (other users, and both platforms' workers polling their
	// streams), so an idle window as long as a run is subtracted from each run, pro rata.
	if f.idle, err = redisWindow(ctx, rdb, func() error { sleepCtx(ctx, env.duration); return ctx.Err() }); err != nil {
		return nil, err
	}
	// Two halves each, in the order with, limiter only, without, without, limiter only,
	// with, so that no side gains from running later (warm caches, a fresh process's first
	// connections) or from drift.
	withURL, withoutURL := env.httpURL+"/v1/auth/whoami", off.HTTPURL+"/v1/auth/whoami"
	limiterURL := noQuota.HTTPURL + "/v1/auth/whoami"
	for _, half := range []struct {
		into *counted
		url  string
	}{{&f.with, withURL}, {&f.limiterOnly, limiterURL}, {&f.without, withoutURL},
		{&f.without, withoutURL}, {&f.limiterOnly, limiterURL}, {&f.with, withURL}} {
		c, err := loadCounted(ctx, rdb, half.url, env.key, env.clients, env.duration/2)
		if err != nil {
			return nil, err
		}
		half.into.add(c)
	}
	slices.Sort(f.with.latencies)
	slices.Sort(f.limiterOnly.latencies)
	slices.Sort(f.without.latencies)
	prefix := env.Setting("REDIS_KEY_PREFIX", "nexusrag:") + "limiter-alone:"
	f.alone1.redis, err = redisWindow(ctx, rdb, func() (err error) {
		f.alone1.result, err = limiterAlone(ctx, rdb, prefix, 1, env.duration)
		return err
	})
	if err != nil {
		return nil, err
	}
	f.alone1.sent = warmUps + len(f.alone1.latencies) + f.alone1.errors
	if f.alone16.result, err = limiterAlone(ctx, rdb, prefix, 16, env.duration); err != nil {
		return nil, err
	}
	return rateLimitRows(f), nil
}

// counted is a load run, how many requests it sent (warm-up included) and what Redis
// counted while it ran.
type counted struct {
	result
	sent  int
	redis redisCalls
}

// add appends another run's figures; latencies stay unsorted until the caller sorts them.
func (c *counted) add(o counted) {
	c.latencies = append(c.latencies, o.latencies...)
	c.errors += o.errors
	c.elapsed += o.elapsed
	c.sent += o.sent
	c.redis = c.redis.add(o.redis)
}

// rateLimitFigures is what rateLimitSuite measured.
type rateLimitFigures struct {
	idle                                        redisCalls
	with, limiterOnly, without, alone1, alone16 counted
}

// loadCounted is load inside a redisWindow.
func loadCounted(ctx context.Context, rdb *redis.Client, url, key string, n int, d time.Duration) (c counted, err error) {
	c.redis, err = redisWindow(ctx, rdb, func() (err error) {
		c.result, err = load(ctx, url, key, n, d)
		return err
	})
	c.sent = warmUps + len(c.latencies) + c.errors
	return c, err
}

func rateLimitRows(f rateLimitFigures) []row {
	perCall := func(c counted, unit string) string {
		n := c.sent
		return fmt.Sprintf("%d %s; Redis per %s: %.2f EVALSHA, %.2f commands", len(c.latencies), unit+"s", unit,
			c.redis.perRequest("evalsha", n, f.idle), c.redis.perRequest("", n, f.idle))
	}
	note := func(c counted) string {
		if c.errors > 0 {
			return fmt.Sprintf("%d errors; %s", c.errors, perCall(c, "request"))
		}
		return perCall(c, "request")
	}
	w, l, wo := f.with, f.limiterOnly, f.without
	ratioRow := func(name string, a, b counted) row {
		return row{name: name, p50: ratio(float64(a.quantile(.5)), float64(b.quantile(.5))),
			p99: ratio(float64(a.quantile(.99)), float64(b.quantile(.99))), rate: ratio(a.rate(), b.rate()),
			note: "latency: lower is better; throughput: higher is better; each side ran two halves, in the order with, limiter only, without, without, limiter only, with"}
	}
	redisRow := func(name string, c counted) row {
		return row{name: name, p50: "-", p99: "-", rate: "-",
			note: fmt.Sprintf("%s over %d requests; one round trip (EVALSHA, %.1f µs in Redis), the rest run inside its script; idle background (%d commands per %s) subtracted",
				c.redis.breakdown(c.sent, f.idle), c.sent, c.redis.usecPerCall("evalsha"), f.idle.total(), f.idle.elapsed.Round(time.Millisecond))}
	}
	return []row{
		{name: "rate limit: gateway with rate limiter and quotas, GET /v1/auth/whoami", p50: ms(w.quantile(.5)), p99: ms(w.quantile(.99)),
			rate: fmt.Sprintf("%.0f req/s", w.rate()), note: note(w)},
		{name: "rate limit: gateway with rate limiter, quotas off (QUOTA_ENABLED=false)", p50: ms(l.quantile(.5)), p99: ms(l.quantile(.99)),
			rate: fmt.Sprintf("%.0f req/s", l.rate()), note: note(l)},
		{name: "baseline: gateway without either (RL_ENABLED=false QUOTA_ENABLED=false)", p50: ms(wo.quantile(.5)), p99: ms(wo.quantile(.99)),
			rate: fmt.Sprintf("%.0f req/s", wo.rate()), note: note(wo)},
		ratioRow("ratio quotas on / off (rate limiter on in both)", w, l),
		ratioRow("ratio rate limiter and quotas / neither", w, wo),
		redisRow("rate limit: Redis commands per request, limiter and quotas", w),
		redisRow("rate limit: Redis commands per request, limiter only", l),
		{name: "rate limit: check alone (Allow from Go), 1 goroutine", p50: ms(f.alone1.quantile(.5)), p99: ms(f.alone1.quantile(.99)),
			rate: fmt.Sprintf("%.0f checks/s", f.alone1.rate()), note: perCall(f.alone1, "check")},
		{name: "rate limit: check alone (Allow from Go), 16 goroutines", p50: ms(f.alone16.quantile(.5)), p99: ms(f.alone16.quantile(.99)),
			rate: fmt.Sprintf("%.0f checks/s", f.alone16.rate()), note: fmt.Sprintf("%d checks; one API key and tenant, so always the same two keys", len(f.alone16.latencies))},
	}
}

// limiterAlone calls the gateway's RateLimiter.Allow (its Lua script, through go-redis)
// from n goroutines for d, with buckets no run empties, under prefix. Its keys expire by
// themselves (PEXPIRE in the script).
func limiterAlone(ctx context.Context, rdb redis.UniversalClient, prefix string, n int, d time.Duration) (result, error) {
	big := gateway.Bucket{Rate: 1_000_000, Burst: 1_000_000}
	l := gateway.NewRateLimiter(rdb, prefix, gateway.RateLimitOptions{
		Limits:  map[string]gateway.ClassLimits{gateway.ClassRead: {Key: big, Tenant: big}},
		Timeout: time.Second,
	}, discardAudit{}, logging.Discard())
	for range warmUps {
		if dec, err := l.Allow(ctx, "bench", "bench-key", gateway.ClassRead); err != nil || !dec.Allowed {
			return result{}, fmt.Errorf("rate limit check during warm-up: allowed %t, error %v", dec.Allowed, err)
		}
	}
	return measure(ctx, n, d, func() (time.Duration, bool) {
		start := time.Now()
		dec, err := l.Allow(ctx, "bench", "bench-key", gateway.ClassRead)
		return time.Since(start), err == nil && dec.Allowed
	})
}

type discardAudit struct{}

func (discardAudit) Record(context.Context, audit.Event) {}

// redisClient connects to the platform's Redis: REDIS_URL as `serve` sees it, with its default.
func (e *benchEnv) redisClient() (*redis.Client, error) {
	opts, err := redis.ParseURL(e.Setting("REDIS_URL", "redis://127.0.0.1:6379/0"))
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return redis.NewClient(opts), nil
}

// redisCalls is what Redis counted in a window, per command (INFO commandstats names,
// e.g. "evalsha"; the commands a script runs are counted too), and how long it was.
type redisCalls struct {
	cmds    map[string]cmdStat
	elapsed time.Duration
}

// cmdStat is one command's calls and the microseconds Redis spent in them.
type cmdStat struct{ calls, usec int64 }

// redisWindow runs fn between two reads of INFO commandstats and returns the difference.
func redisWindow(ctx context.Context, rdb *redis.Client, fn func() error) (redisCalls, error) {
	before, err := commandStats(ctx, rdb)
	if err != nil {
		return redisCalls{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return redisCalls{}, err
	}
	elapsed := time.Since(start)
	after, err := commandStats(ctx, rdb)
	if err != nil {
		return redisCalls{}, err
	}
	for cmd, b := range before {
		a := after[cmd]
		after[cmd] = cmdStat{calls: a.calls - b.calls, usec: a.usec - b.usec}
	}
	return redisCalls{cmds: after, elapsed: elapsed}, nil
}

// commandStats reads every command's calls and time from INFO commandstats.
func commandStats(ctx context.Context, rdb *redis.Client) (map[string]cmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	stats := map[string]cmdStat{}
	for line := range strings.Lines(info) {
		// cmdstat_evalsha:calls=66892,usec=1263222,usec_per_call=18.88,rejected_calls=0,failed_calls=0
		name, fields, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":")
		if !ok {
			continue
		}
		var st cmdStat
		for field := range strings.SplitSeq(fields, ",") {
			key, value, _ := strings.Cut(field, "=")
			switch key {
			case "calls":
				st.calls, err = strconv.ParseInt(value, 10, 64)
			case "usec":
				st.usec, err = strconv.ParseInt(value, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("redis INFO commandstats: %q: %w", line, err)
			}
		}
		stats[name] = st
	}
	return stats, nil
}

// add is the sum of two windows.
func (c redisCalls) add(o redisCalls) redisCalls {
	sum := redisCalls{cmds: maps.Clone(c.cmds), elapsed: c.elapsed + o.elapsed}
	if sum.cmds == nil {
		sum.cmds = map[string]cmdStat{}
	}
	for cmd, st := range o.cmds {
		s := sum.cmds[cmd]
		sum.cmds[cmd] = cmdStat{calls: s.calls + st.calls, usec: s.usec + st.usec}
	}
	return sum
}

func (c redisCalls) total() int64 {
	var t int64
	for _, st := range c.cmds {
		t += st.calls
	}
	return t
}

func (c redisCalls) calls(cmd string) int64 {
	if cmd == "" {
		return c.total()
	}
	return c.cmds[cmd].calls
}

// usecPerCall is the microseconds Redis spent per call of cmd in the window.
func (c redisCalls) usecPerCall(cmd string) float64 {
	st := c.cmds[cmd]
	if st.calls == 0 {
		return 0
	}
	return float64(st.usec) / float64(st.calls)
}

// perRequest is the calls of cmd ("" for all commands) per request over n requests, less
// the idle window's calls scaled to this window's length.
func (c redisCalls) perRequest(cmd string, n int, idle redisCalls) float64 {
	if n == 0 {
		return 0
	}
	background := float64(idle.calls(cmd)) * c.elapsed.Seconds() / idle.elapsed.Seconds()
	return max(0, float64(c.calls(cmd))-background) / float64(n) // never -0.00 from noise
}

// breakdown is the commands per request in all, then each command with at least 0.05, most first.
func (c redisCalls) breakdown(n int, idle redisCalls) string {
	type share struct {
		cmd string
		per float64
	}
	var shares []share
	for cmd := range c.cmds {
		if per := c.perRequest(cmd, n, idle); per >= 0.05 {
			shares = append(shares, share{cmd, per})
		}
	}
	slices.SortFunc(shares, func(a, b share) int {
		if c := cmp.Compare(b.per, a.per); c != 0 {
			return c
		}
		return strings.Compare(a.cmd, b.cmd)
	})
	parts := []string{fmt.Sprintf("%.2f in all", c.perRequest("", n, idle))}
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.2f", strings.ToUpper(s.cmd), s.per))
	}
	return strings.Join(parts, ", ")
}

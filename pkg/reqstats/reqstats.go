// Package reqstats counts request outcomes per minute across every gateway replica: each
// replica adds up in memory and flushes into one Redis hash per minute (one pipelined
// round trip per flush, none per request); readers sum the minutes of a window. The SLO
// and the ops metrics are computed from it.
package reqstats

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexusrag/nexusrag/pkg/redisscan"
)

// BoundsMS are the upper bounds of the latency buckets, in milliseconds; a last bucket
// takes what is above.
var BoundsMS = []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

// keyTTL keeps a minute's counts for a day: more than any window read.
const keyTTL = 25 * time.Hour

// Counts are one dimension's requests in one minute.
type Counts struct {
	Requests, Errors int64
	Buckets          []int64 // len(BoundsMS)+1
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	if c.Buckets == nil {
		c.Buckets = make([]int64, len(BoundsMS)+1)
	}
	for i, n := range o.Buckets {
		c.Buckets[i] += n
	}
}

// Quantile is the q-th quantile (0..1) of the latencies in ms, interpolated within its
// bucket; 0 without requests.
func (c Counts) Quantile(q float64) float64 {
	var total int64
	for _, n := range c.Buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen int64
	for i, n := range c.Buckets {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		lo := 0.0
		if i > 0 {
			lo = BoundsMS[i-1]
		}
		if i == len(BoundsMS) { // above the last bound: say the bound
			return BoundsMS[len(BoundsMS)-1]
		}
		hi := BoundsMS[i]
		return math.Round((lo+(hi-lo)*(rank-float64(seen))/float64(n))*10) / 10
	}
	return BoundsMS[len(BoundsMS)-1]
}

// Stats records and reads the counts under a Redis key prefix.
type Stats struct {
	rdb    redis.UniversalClient
	prefix string
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	pending map[int64]map[string]*Counts // minute (unix) -> dimension -> counts
	gauges  map[string]int64
	replica string
}

// New returns the stats of rdb under prefix; replica names this process's gauges.
func New(rdb redis.UniversalClient, prefix, replica string, log *slog.Logger) *Stats {
	return &Stats{rdb: rdb, prefix: prefix + "reqstats:", log: log, now: time.Now, pending: map[int64]map[string]*Counts{},
		gauges: map[string]int64{}, replica: replica}
}

// WithClock replaces the clock (tests).
func (s *Stats) WithClock(now func() time.Time) *Stats {
	s.now = now
	return s
}

// Observe counts one request in each of dims (for example "class:read", "slo:api"): an
// error when failed, its latency in the histogram.
func (s *Stats) Observe(elapsed time.Duration, failed bool, dims ...string) {
	ms := float64(elapsed.Microseconds()) / 1000
	bucket := len(BoundsMS)
	for i, b := range BoundsMS {
		if ms <= b {
			bucket = i
			break
		}
	}
	minute := s.now().Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dims {
		c := s.counts(minute, d)
		c.Requests++
		if failed {
			c.Errors++
		}
		c.Buckets[bucket]++
	}
}

// Count adds n to a counter without latency (for example "runs:completed").
func (s *Stats) Count(dim string, n int64) {
	minute := s.now().Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts(minute, dim).Requests += n
}

// counts is the pending counts of dim in minute, made when missing; s.mu is held.
func (s *Stats) counts(minute int64, dim string) *Counts {
	m := s.pending[minute]
	if m == nil {
		m = map[string]*Counts{}
		s.pending[minute] = m
	}
	c := m[dim]
	if c == nil {
		c = &Counts{Buckets: make([]int64, len(BoundsMS)+1)}
		m[dim] = c
	}
	return c
}

// Gauge adds delta to this replica's gauge name (for example open run streams).
func (s *Stats) Gauge(name string, delta int64) {
	s.mu.Lock()
	s.gauges[name] += delta
	s.mu.Unlock()
}

// SetGauge sets this replica's gauge name to v.
func (s *Stats) SetGauge(name string, v int64) {
	s.mu.Lock()
	s.gauges[name] = v
	s.mu.Unlock()
}

// Flush writes what was counted since the last flush; what Redis refuses is kept for the
// next one.
func (s *Stats) Flush(ctx context.Context) error {
	s.mu.Lock()
	pending := s.pending
	s.pending = map[int64]map[string]*Counts{}
	gauges := make(map[string]int64, len(s.gauges))
	for k, v := range s.gauges {
		gauges[k] = v
	}
	s.mu.Unlock()
	pipe := s.rdb.Pipeline()
	for minute, dims := range pending {
		key := s.prefix + strconv.FormatInt(minute, 10)
		for d, c := range dims {
			if c.Requests != 0 {
				pipe.HIncrBy(ctx, key, d+"|n", c.Requests)
			}
			if c.Errors != 0 {
				pipe.HIncrBy(ctx, key, d+"|e", c.Errors)
			}
			for i, n := range c.Buckets {
				if n != 0 {
					pipe.HIncrBy(ctx, key, d+"|b"+strconv.Itoa(i), n)
				}
			}
		}
		pipe.Expire(ctx, key, keyTTL)
	}
	for name, v := range gauges {
		// Replicas that stop leave their gauge to expire.
		pipe.Set(ctx, s.prefix+"gauge:"+name+":"+s.replica, v, time.Minute)
	}
	if len(pending) == 0 && len(gauges) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.mu.Lock()
		for minute, dims := range pending { // back, for the next flush
			for d, c := range dims {
				s.counts(minute, d).add(*c)
			}
		}
		s.mu.Unlock()
		return fmt.Errorf("flush request stats: %w", err)
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (s *Stats) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := s.Flush(fctx); err != nil {
				s.log.WarnContext(fctx, "request stats not flushed at shutdown", "error", err)
			}
			return
		case <-tick.C:
			if err := s.Flush(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "request stats not flushed; kept for the next flush", "error", err)
			}
		}
	}
}

// Window sums every dimension over the minutes of the last d, the current one included.
func (s *Stats) Window(ctx context.Context, d time.Duration) (map[string]Counts, error) {
	now := s.now().Unix() / 60
	minutes := max(1, int64(d/time.Minute))
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, 0, minutes)
	for m := now - minutes + 1; m <= now; m++ {
		cmds = append(cmds, pipe.HGetAll(ctx, s.prefix+strconv.FormatInt(m, 10)))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read request stats: %w", err)
	}
	out := map[string]Counts{}
	for _, cmd := range cmds {
		for field, v := range cmd.Val() {
			dim, kind, ok := strings.Cut(field, "|")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				continue
			}
			c := out[dim]
			if c.Buckets == nil {
				c.Buckets = make([]int64, len(BoundsMS)+1)
			}
			switch {
			case kind == "n":
				c.Requests += n
			case kind == "e":
				c.Errors += n
			case strings.HasPrefix(kind, "b"):
				if i, err := strconv.Atoi(kind[1:]); err == nil && i >= 0 && i < len(c.Buckets) {
					c.Buckets[i] += n
				}
			}
			out[dim] = c
		}
	}
	return out, nil
}

// Gauges sums every gauge over the replicas that flushed it within the last minute, in
// one scan: name -> sum.
func (s *Stats) Gauges(ctx context.Context) (map[string]int64, error) {
	prefix := s.prefix + "gauge:"
	keys, err := redisscan.Keys(ctx, s.rdb, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("read gauges: %w", err)
	}
	out := map[string]int64{}
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("read gauges: %w", err)
	}
	for i, v := range vals {
		str, ok := v.(string)
		name := strings.TrimPrefix(keys[i], prefix)
		if j := strings.LastIndex(name, ":"); ok && j > 0 { // name:replica
			n, _ := strconv.ParseInt(str, 10, 64)
			out[name[:j]] += n
		}
	}
	return out, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// result is what one load run measured.
type result struct {
	latencies []time.Duration
	errors    int
	elapsed   time.Duration
}

func (r result) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(q*float64(len(r.latencies))))]
}

func (r result) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// warmUps is how many requests each load run sends before measuring.
const warmUps = 200

// load sends GET url with the bearer key from n clients for d (after warmUps requests)
// and records every latency. Non-200 answers are counted as errors.
func load(ctx context.Context, url, key string, n int, d time.Duration) (result, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}
	defer client.CloseIdleConnections()
	one := func() (time.Duration, bool) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return 0, false
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return time.Since(start), res.StatusCode == http.StatusOK
	}
	for range warmUps { // connections, caches
		if _, ok := one(); !ok {
			return result{}, fmt.Errorf("GET %s failed during warm-up", url)
		}
	}
	return measure(ctx, n, d, one)
}

// measure calls one from n goroutines for d and records every latency; one returns false
// for a failure, counted as an error.
func measure(ctx context.Context, n int, d time.Duration, one func() (time.Duration, bool)) (result, error) {
	var mu sync.Mutex
	var all result
	var wg sync.WaitGroup
	stopAt := time.Now().Add(d)
	start := time.Now()
	for range n {
		wg.Go(func() {
			var lat []time.Duration
			errs := 0
			for time.Now().Before(stopAt) && ctx.Err() == nil {
				l, ok := one()
				if !ok {
					errs++
					continue
				}
				lat = append(lat, l)
			}
			mu.Lock()
			all.latencies = append(all.latencies, lat...)
			all.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	slices.Sort(all.latencies)
	return all, ctx.Err()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

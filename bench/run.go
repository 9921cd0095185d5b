package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/nexusrag/nexusrag/internal/launch"
)

const (
	runQuestion       = "What are the release gates for Agent 2.0?"
	runWarmup         = 20
	runLatencyRuns    = 400
	runLatencyClients = 4
	runHeldStreams    = 200
	runHeartbeat      = 100 * time.Millisecond
	runHold           = 3 * time.Second
	runTimeout        = 2 * time.Minute
)

// runSuite: POST /v1/run on the seed-demo corpus with the offline extractive generator.
// First the time to request.accepted and to the first token.delta over runs from a few
// clients; then runHeldStreams streams open together. An extractive run ends within
// milliseconds, so the streams are held where a real run waits: on speech synthesis,
// here a local stand-in for OpenAI's endpoint that answers once released. The suite
// runs its own `serve` (same database) to set the heartbeat interval, the TTS provider,
// a pprof listener and a run bulkhead that admits them all (RUN_MAX_CONCURRENCY is 64 by
// default), and so that the memory it reads moves with the runs alone.
func runSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	tts := newHeldTTS()
	defer tts.close()
	audioDir, err := os.MkdirTemp("", "nexusrag-bench-audio-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(audioDir)
	proc, stop, err := env.serveWith("RUN_HEARTBEAT_INTERVAL="+runHeartbeat.String(), "TTS_PROVIDER=openai", "OPENAI_BASE_URL="+tts.srv.URL,
		"OPENAI_API_KEY=bench-fake", "TTS_TIMEOUT=1m", "AUDIO_DIR="+audioDir, "PPROF_ENABLED=true", "RUN_MAX_CONCURRENCY="+strconv.Itoa(runHeldStreams))
	if err != nil {
		return nil, err
	}
	defer stop()
	if out, err := env.Command("seed-demo").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("seed-demo: %v: %s", err, out)
	}
	key, err := createTenantKey(env, "t1", "reader")
	if err != nil {
		return nil, err
	}
	api := launch.NewAPI(proc.HTTPURL, key, runHeldStreams)
	defer api.HTTP.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	lat, err := runLatency(ctx, api)
	if err != nil {
		return nil, fmt.Errorf("run latency: %w", err)
	}
	held, err := holdStreams(ctx, api, proc.Pid(), tts, proc.MetricsURL)
	if err != nil {
		return nil, fmt.Errorf("held run streams: %w", err)
	}
	return runRows(lat, held), nil
}

func runRows(lat streamSummary, held heldResult) []row {
	perStream := func(a, b int64) string {
		return fmt.Sprintf("%+.1f KiB", float64(b-a)/1024/runHeldStreams)
	}
	b, d, a := held.before, held.during, held.after
	return []row{
		{name: "run: POST /v1/run to request.accepted (extractive, c1)", p50: ms(lat.accepted.quantile(.5)), p99: ms(lat.accepted.quantile(.99)),
			rate: fmt.Sprintf("%.0f runs/s", lat.accepted.rate()),
			note: fmt.Sprintf("%d runs from %d clients, a fresh session each, audio off; %s", runLatencyRuns, runLatencyClients, lat.health())},
		{name: "run: POST /v1/run to first token.delta", p50: ms(lat.firstDelta.quantile(.5)), p99: ms(lat.firstDelta.quantile(.99)), rate: "-",
			note: fmt.Sprintf("to done: p50 %s, p99 %s; %d token.delta per run", ms(lat.done.quantile(.5)), ms(lat.done.quantile(.99)), lat.deltas)},
		{name: fmt.Sprintf("run: %d streams started at once, to first token.delta", runHeldStreams), p50: ms(held.firstDelta.quantile(.5)),
			p99: ms(held.firstDelta.quantile(.99)), rate: "-",
			note: fmt.Sprintf("to request.accepted: p50 %s, p99 %s; audio on; %s", ms(held.accepted.quantile(.5)), ms(held.accepted.quantile(.99)), held.health())},
		{name: fmt.Sprintf("run: %d streams held open, heartbeat every %s", runHeldStreams, runHeartbeat), p50: "-", p99: "-", rate: "-",
			note: fmt.Sprintf("%d held together %s after message.final (TTS stand-in, then released); per stream: live heap %s, stacks %s, %+.1f goroutines, RSS %s (sampled peak %s); %d-%d heartbeats per stream, seq without gaps; once all ended, %+d goroutines against before",
				held.held, held.heldFor.Round(10*time.Millisecond), perStream(b.Heap, d.Heap), perStream(b.Stacks, d.Stacks),
				float64(d.Goroutines-b.Goroutines)/runHeldStreams, perStream(b.RSS, d.RSS), perStream(b.RSS, held.peakRSS), held.minBeats, held.maxBeats,
				a.Goroutines-b.Goroutines)},
	}
}

// runEvent is the part of every event's data the bench checks.
type runEvent struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Seq       int64  `json:"seq"`
}

// streamLog is what one run's stream delivered, timed from sending the POST.
type streamLog struct {
	accepted, firstDelta, done time.Duration
	deltas, heartbeats         int
	err                        error // the request failed or the stream broke the contract
}

// streamRun posts a run and reads its stream to the end with an SSE client library,
// checking the contract: id and seq 1..N without a gap, every request_id the response's
// X-Request-Id, the order request.accepted, token.delta..., message.final, (audio.ready),
// done, heartbeats anywhere after the first event, nothing after done.
func streamRun(ctx context.Context, api launch.API, session string, audio bool) (l streamLog) {
	body, _ := json.Marshal(map[string]any{"session_id": session, "corpus_id": "c1", "message": runQuestion, "top_k": 5, "audio": audio})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.Base+"/v1/run", bytes.NewReader(body))
	if err != nil {
		l.err = err
		return l
	}
	req.Header.Set("Authorization", "Bearer "+api.Key)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	res, err := api.HTTP.Do(req)
	if err != nil {
		l.err = fmt.Errorf("POST /v1/run: %w", err)
		return l
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		l.err = fmt.Errorf("POST /v1/run: %s: %s", res.Status, bytes.TrimSpace(b))
		return l
	}
	want := []string{"request.accepted", "token.delta", "message.final", "done"}
	if audio {
		want = slices.Insert(want, 3, "audio.ready")
	}
	var order []string
	seq := int64(0)
	for e, err := range sse.Read(res.Body, nil) {
		at := time.Since(sent)
		if err != nil {
			l.err = fmt.Errorf("session %s: read event %d: %w", session, seq+1, err)
			return l
		}
		seq++
		var ev runEvent
		if err := json.Unmarshal([]byte(e.Data), &ev); err != nil {
			l.err = fmt.Errorf("session %s: event %d: %w", session, seq, err)
			return l
		}
		if err := checkEvent(e, ev, seq, res.Header.Get("X-Request-Id"), l.done > 0); err != nil {
			l.err = fmt.Errorf("session %s: %w", session, err)
			return l
		}
		switch ev.Type {
		case "heartbeat":
			l.heartbeats++
			continue
		case "request.accepted":
			l.accepted = at
		case "token.delta":
			if l.deltas == 0 {
				l.firstDelta = at
			}
			l.deltas++
		case "done":
			l.done = at
		}
		if n := len(order); n == 0 || ev.Type != "token.delta" || order[n-1] != "token.delta" {
			order = append(order, ev.Type)
		}
	}
	if !slices.Equal(order, want) {
		l.err = fmt.Errorf("session %s: events %v, want %v", session, order, want)
	}
	return l
}

func checkEvent(e sse.Event, ev runEvent, seq int64, requestID string, afterDone bool) error {
	switch {
	case afterDone:
		return fmt.Errorf("event %d (%s) after done", seq, ev.Type)
	case ev.Seq != seq || e.LastEventID != strconv.FormatInt(seq, 10):
		return fmt.Errorf("event %d has seq %d and id %q: lost or repeated events", seq, ev.Seq, e.LastEventID)
	case e.Type != ev.Type:
		return fmt.Errorf("event %d: event: %s but data type %s", seq, e.Type, ev.Type)
	case requestID != "" && ev.RequestID != requestID:
		return fmt.Errorf("event %d: request_id %s, want %s", seq, ev.RequestID, requestID)
	case seq == 1 && ev.Type != "request.accepted":
		return fmt.Errorf("first event is %s", ev.Type)
	}
	return nil
}

// streamSummary is what a set of streams delivered; the latencies are those of the
// streams without an error.
type streamSummary struct {
	accepted, firstDelta, done result
	failed                     int
	firstErr                   error
	deltas, minBeats, maxBeats int
}

func summarize(logs []streamLog, elapsed time.Duration) streamSummary {
	s := streamSummary{minBeats: -1}
	for _, l := range logs {
		if l.err != nil {
			if s.failed++; s.firstErr == nil {
				s.firstErr = l.err
			}
			continue
		}
		s.accepted.latencies = append(s.accepted.latencies, l.accepted)
		s.firstDelta.latencies = append(s.firstDelta.latencies, l.firstDelta)
		s.done.latencies = append(s.done.latencies, l.done)
		s.deltas = l.deltas
		if s.minBeats < 0 || l.heartbeats < s.minBeats {
			s.minBeats = l.heartbeats
		}
		s.maxBeats = max(s.maxBeats, l.heartbeats)
	}
	for _, r := range []*result{&s.accepted, &s.firstDelta, &s.done} {
		r.elapsed, r.errors = elapsed, s.failed
		slices.Sort(r.latencies)
	}
	return s
}

func (s streamSummary) health() string {
	n := len(s.accepted.latencies) + s.failed
	if s.failed == 0 {
		return fmt.Sprintf("all %d streams complete, seq 1..N without gaps, ended with done", n)
	}
	return fmt.Sprintf("%d of %d streams failed, first: %v", s.failed, n, s.firstErr)
}

// runLatency times runs from runLatencyClients clients after a sequential warm-up.
func runLatency(ctx context.Context, api launch.API) (streamSummary, error) {
	for i := range runWarmup {
		if l := streamRun(ctx, api, fmt.Sprintf("bench-warmup-%02d", i), false); l.err != nil {
			return streamSummary{}, fmt.Errorf("warm-up: %w", l.err)
		}
	}
	logs := make([]streamLog, runLatencyRuns)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runLatencyClients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(logs)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				logs[i] = streamRun(ctx, api, fmt.Sprintf("bench-latency-%04d", i), false)
			}
		})
	}
	wg.Wait()
	return summarize(logs, time.Since(start)), ctx.Err()
}

type heldResult struct {
	streamSummary
	held                  int64 // streams waiting on speech synthesis together
	heldFor               time.Duration
	before, during, after launch.Memory
	peakRSS               int64
}

// holdStreams starts runHeldStreams runs with audio at once, waits until every one is
// waiting on the TTS stand-in (its stream idle but for heartbeats), holds them for
// runHold while reading the process's memory, then releases them and reads each to done.
func holdStreams(ctx context.Context, api launch.API, pid int, tts *heldTTS, debugURL string) (heldResult, error) {
	var out heldResult
	var err error
	if out.before, err = launch.ReadMemory(ctx, pid, debugURL); err != nil {
		return out, err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Go(func() { out.peakRSS = launch.PeakRSS(sctx, pid) })
	logs := make([]streamLog, runHeldStreams)
	var ended atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range logs {
		wg.Go(func() {
			logs[i] = streamRun(ctx, api, fmt.Sprintf("bench-held-%03d", i), true)
			ended.Add(1)
		})
	}
	all := waitUntil(ctx, func() bool { return tts.waiting.Load()+ended.Load() >= runHeldStreams })
	out.held = tts.waiting.Load()
	heldAt := time.Now()
	if all {
		sleepCtx(ctx, runHold/2)
		out.during, err = launch.ReadMemory(ctx, pid, debugURL)
		sleepCtx(ctx, time.Until(heldAt.Add(runHold)))
	}
	out.heldFor = time.Since(heldAt)
	tts.release()
	wg.Wait()
	stopSampling()
	sampler.Wait()
	out.streamSummary = summarize(logs, time.Since(start))
	if err != nil {
		return out, err
	}
	if !all {
		return out, fmt.Errorf("only %d of %d streams reached speech synthesis together: %w", out.held, runHeldStreams, ctx.Err())
	}
	// Idle keep-alive connections hold a goroutine each on the server: close them, then
	// give the server a moment to see it before counting what the streams left behind.
	api.HTTP.CloseIdleConnections()
	settle, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	waitUntil(settle, func() bool {
		out.after, err = launch.ReadMemory(ctx, pid, debugURL)
		return err != nil || out.after.Goroutines <= out.before.Goroutines
	})
	return out, err
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// heldTTS stands in for OpenAI's speech endpoint and answers nothing until released,
// so that a run asked for audio waits in its tts node with its stream open and idle.
type heldTTS struct {
	srv      *httptest.Server
	waiting  atomic.Int64
	released chan struct{}
	once     sync.Once
}

func newHeldTTS() *heldTTS {
	t := &heldTTS{released: make(chan struct{})}
	t.srv = httptest.NewServer(http.HandlerFunc(t.speak))
	return t
}

func (t *heldTTS) speak(w http.ResponseWriter, r *http.Request) {
	t.waiting.Add(1)
	defer t.waiting.Add(-1)
	select {
	case <-t.released:
	case <-r.Context().Done():
		return
	}
	// One MPEG-1 Layer III frame of silence (128 kbit/s, 44.1 kHz, mono).
	frame := make([]byte, 417)
	copy(frame, []byte{0xFF, 0xFB, 0x90, 0xC4})
	w.Header().Set("Content-Type", "audio/mpeg")
	_, _ = w.Write(frame)
}

func (t *heldTTS) release() { t.once.Do(func() { close(t.released) }) }

func (t *heldTTS) close() {
	t.release()
	t.srv.Close()
}

package gateway

import (
	"context"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// resumable is a run service and two gateway replicas in front of it that share one
// Redis: what a load balancer spreads a client's reconnects over.
type resumable struct {
	run      *scriptedRun
	replicas [2]*httptest.Server
	foreign  *httptest.Server // a replica that authenticates another key of the tenant
}

func newResumable(t *testing.T) *resumable {
	t.Helper()
	rdb, prefix := redistest.New(t)
	streams := NewRunStreams(rdb, prefix, time.Minute)
	h := &resumable{run: &scriptedRun{release: make(chan string), canceled: make(chan struct{})}}
	g := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	g.Register(&runv1.RunService_ServiceDesc, h.run)
	conn, stop, err := grpcx.InProcess(g)
	require.NoError(t, err)
	t.Cleanup(stop)
	serve := func(keyID string) *httptest.Server {
		s := &sseStream{client: runv1.NewRunServiceClient(conn), heartbeat: 100 * time.Millisecond, after: time.After, now: time.Now,
			streams: streams, log: logging.Discard()}
		handler := s.handler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principal.Principal{TenantID: "t1", KeyID: keyID, Role: apiv1.Role_ROLE_READER}
			handler(w, r.WithContext(principal.With(withState(r.Context(), &reqState{requestID: "req-1"}), p)), nil)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	h.replicas = [2]*httptest.Server{serve("k1"), serve("k1")}
	h.foreign = serve("k2")
	return h
}

func post(t *testing.T, ctx context.Context, url string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"session_id":"s","corpus_id":"c","message":"hi"}`))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	require.Equal(t, http.StatusOK, res.StatusCode)
	return res
}

// TestSSEResumeAcrossReplicasAtRandomPoints drops the connection after a random number of
// events, again and again, and reconnects with Last-Event-ID to a random replica while
// the run goes on: the client sees every seq once, in order, to done, and the run is
// never cancelled.
func TestSSEResumeAcrossReplicasAtRandomPoints(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	for round := range 12 {
		h := newResumable(t)
		kinds := []string{"request.accepted"}
		for range 1 + rng.IntN(12) {
			kinds = append(kinds, "token.delta")
		}
		kinds = append(kinds, "message.final", "done")
		go func() {
			for _, k := range kinds {
				h.run.release <- k
			}
			close(h.run.release)
		}()

		var seqs []int64
		var got []string
		last, drops := "", 0
		for done := false; !done; {
			ctx, cancel := context.WithCancel(context.Background())
			var res *http.Response
			if last == "" {
				res = post(t, ctx, h.replicas[rng.IntN(2)].URL)
			} else {
				res = post(t, ctx, h.replicas[rng.IntN(2)].URL, "Last-Event-ID", last)
			}
			pull, stop := iter.Pull2(sse.Read(res.Body, nil))
			for n := 1 + rng.IntN(4); n > 0 && !done; n-- {
				e, p := next(t, pull)
				require.Equal(t, e.Type, p.Type)
				require.Equal(t, resumeID(strings.Split(e.LastEventID, ".")[0], p.Seq), e.LastEventID, "the SSE id is <stream>.<seq>")
				seqs = append(seqs, p.Seq)
				if p.Type != "heartbeat" {
					got = append(got, p.Type)
				}
				last, done = e.LastEventID, p.Type == "done"
			}
			stop()
			cancel() // drop the connection
			drops++
		}
		want := make([]int64, len(seqs))
		for i := range want {
			want[i] = int64(i + 1)
		}
		require.Equal(t, want, seqs, "round %d: every seq once, in order, across %d connections", round, drops)
		require.Equal(t, kinds, got, "round %d", round)
		select {
		case <-h.run.canceled:
			t.Fatalf("round %d: the run was cancelled when a connection dropped", round)
		default:
		}
	}
}

func TestSSEResumeRefusesOtherKeysAndUnknownStreams(t *testing.T) {
	h := newResumable(t)
	go func() {
		for _, k := range []string{"request.accepted", "done"} {
			h.run.release <- k
		}
		close(h.run.release)
	}()
	res := post(t, context.Background(), h.replicas[0].URL)
	pull, stop := iter.Pull2(sse.Read(res.Body, nil))
	defer stop()
	e, _ := next(t, pull)
	stream, _, ok := strings.Cut(e.LastEventID, ".")
	require.True(t, ok, e.LastEventID)

	for _, tt := range []struct{ name, url, last string }{
		{"another key of the tenant", h.foreign.URL, e.LastEventID},
		{"an unknown stream", h.replicas[1].URL, "0b0e6a2c-6f2e-4c55-9b7e-3c1c7f1f0a11.1"},
		{"not a stream id", h.replicas[1].URL, "7"},
		{"a negative seq", h.replicas[1].URL, stream + ".-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := post(t, context.Background(), tt.url, "Last-Event-ID", tt.last)
			pull, stop := iter.Pull2(sse.Read(res.Body, nil))
			defer stop()
			e, p := next(t, pull)
			require.Equal(t, "resume.unsupported", e.Type)
			require.Equal(t, tt.last, p.Data["last_event_id"])
			require.Contains(t, p.Data["message"], "RUN_STREAM_RESUME_TTL")
			e, _ = next(t, pull)
			require.Equal(t, "done", e.Type)
		})
	}
	// The owner resumes from the start: the whole stream again.
	res = post(t, context.Background(), h.replicas[1].URL, "Last-Event-ID", resumeID(stream, 0))
	pull2, stop2 := iter.Pull2(sse.Read(res.Body, nil))
	defer stop2()
	var types []string
	for {
		e, p := next(t, pull2)
		if p.Type != "heartbeat" {
			types = append(types, e.Type)
		}
		if p.Type == "done" {
			break
		}
		require.Equal(t, resumeID(stream, p.Seq), e.LastEventID)
	}
	require.Equal(t, []string{"request.accepted", "done"}, types)
}

// TestSSEResumeOfAStreamWhoseProducerDied: a stream that stops without done (its
// producer's process died) ends, after three silent heartbeat intervals, with an error
// STREAM_INTERRUPTED and done, numbered after the last stored event.
func TestSSEResumeOfAStreamWhoseProducerDied(t *testing.T) {
	rdb, prefix := redistest.New(t)
	streams := NewRunStreams(rdb, prefix, time.Minute)
	ctx := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k1"})
	id, err := streams.create(ctx, streamOwner(ctx))
	require.NoError(t, err)
	require.NoError(t, streams.append(ctx, id, streamEntry{seq: 1, event: "request.accepted",
		payload: `{"type":"request.accepted","request_id":"req-1","seq":1,"data":{}}`}))

	s := &sseStream{heartbeat: 20 * time.Millisecond, after: time.After, now: time.Now, streams: streams}
	handler := s.handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler(w, r.WithContext(principal.With(withState(r.Context(), &reqState{requestID: "req-2"}), principal.Principal{TenantID: "t1", KeyID: "k1"})), nil)
	}))
	t.Cleanup(srv.Close)
	res := post(t, context.Background(), srv.URL, "Last-Event-ID", resumeID(id, 0))
	pull, stop := iter.Pull2(sse.Read(res.Body, nil))
	defer stop()
	for i, want := range []string{"request.accepted", "error", "done"} {
		e, p := next(t, pull)
		require.Equal(t, want, e.Type)
		require.EqualValues(t, i+1, p.Seq)
		require.Equal(t, resumeID(id, int64(i+1)), e.LastEventID)
		if want == "error" {
			require.Equal(t, "STREAM_INTERRUPTED", p.Data["code"])
		}
	}
}

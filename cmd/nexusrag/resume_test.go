package main_test

import (
	"encoding/json"
	"iter"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"
)

// TestRunStreamResumesOnAnotherReplica: with RUN_STREAM_RESUME on, a client whose
// connection drops after a random number of events reconnects with Last-Event-ID to the
// other gateway replica and gets the rest of the run: every seq once, in order, to done.
func TestRunStreamResumesOnAnotherReplica(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "RUN_STREAM_RESUME=true", "RUN_STREAM_RESUME_TTL=1m")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	_, err = run(t, env, "", "seed-demo")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	peers := []string{"GOVERNANCE_GRPC_ADDR=" + a.GRPC, "RETRIEVAL_GRPC_ADDR=" + a.GRPC, "INGEST_GRPC_ADDR=" + a.GRPC,
		"RUN_GRPC_ADDR=" + a.GRPC, "BILLING_GRPC_ADDR=" + a.GRPC, "FAILOVER_GRPC_ADDR=" + a.GRPC}
	b := startWithEnv(t, append(env, peers...), dbURL, "--services=gateway,ops,ui")
	_, reader := a.createKey("t1", "reader")
	replicas := []*platform{a, b}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	body := `{"session_id":"resume","corpus_id":"c1","message":"What are the release gates for Agent 2.0?"}`
	for round := range 4 {
		var seqs []int64
		var types []string
		last, hops := "", []int{}
		for done := false; !done; {
			at := rng.IntN(2)
			if last == "" {
				at = 0 // the run starts on a; every reconnect picks a replica at random
			}
			hops = append(hops, at)
			var headers []string
			if last != "" {
				headers = []string{"Last-Event-ID", last}
			}
			res := replicas[at].send(http.MethodPost, "/v1/run", reader, body, headers...)
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
			next, stop := iter.Pull2(sse.Read(res.Body, nil))
			for n := 1 + rng.IntN(6); n > 0 && !done; n-- {
				e, err, ok := next()
				require.True(t, ok, "the stream ended before done")
				require.NoError(t, err)
				var ev sseEvent
				require.NoError(t, json.Unmarshal([]byte(e.Data), &ev), e.Data)
				require.True(t, strings.HasSuffix(e.LastEventID, "."+jsonInt(ev.Seq)), "id %q is <stream>.<seq>", e.LastEventID)
				seqs = append(seqs, ev.Seq)
				if ev.Type != "heartbeat" {
					types = append(types, ev.Type)
				}
				last, done = e.LastEventID, ev.Type == "done"
			}
			stop()
			res.Body.Close() // drop the connection (after done too: nothing is left)
		}
		for i, s := range seqs {
			require.EqualValues(t, i+1, s, "round %d over replicas %v: every seq once, in order", round, hops)
		}
		require.Equal(t, "request.accepted", types[0])
		require.Contains(t, types, "message.final")
		require.Equal(t, "done", types[len(types)-1])
		t.Logf("round %d: %d events over %d connections (replicas %v)", round, len(seqs), len(hops), hops)
	}
}

func jsonInt(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

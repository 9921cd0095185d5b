package main_test

import (
	"encoding/json"
	"io"
	"iter"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"
)

type sseEvent struct {
	id, typ string
	Type    string         `json:"type"`
	Seq     int64          `json:"seq"`
	ReqID   string         `json:"request_id"`
	Data    map[string]any `json:"data"`
}

// runStream posts to /v1/run and reads the whole event stream with an SSE client library.
func (p *platform) runStream(key, body string, headers ...string) (*http.Response, []sseEvent) {
	p.t.Helper()
	res := p.send(http.MethodPost, "/v1/run", key, body, headers...)
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		res.Body = io.NopCloser(strings.NewReader(string(b)))
		return res, nil
	}
	var out []sseEvent
	next, stop := iter.Pull2(sse.Read(res.Body, nil))
	defer stop()
	for {
		e, err, ok := next()
		if !ok {
			return res, out
		}
		require.NoError(p.t, err)
		ev := sseEvent{id: e.LastEventID, typ: e.Type}
		require.NoError(p.t, json.Unmarshal([]byte(e.Data), &ev), e.Data)
		out = append(out, ev)
	}
}

// TestRunNamesTheReleaseGates is the product's sanity check: over the demo corpus, with the
// corpus's default top_k, the offline answer to "What are the release gates for Agent
// 2.0?" names the gates themselves, not only that gates exist.
func TestRunNamesTheReleaseGates(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"DEBUG_EVENTS=true"})
	_, err := run(t, p.env, "", "seed-demo")
	require.NoError(t, err)
	_, reader := p.createKey("t1", "reader")

	res, events := p.runStream(reader, `{"session_id":"gates","corpus_id":"c1","message":"What are the release gates for Agent 2.0?"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	var final, debug map[string]any
	for _, e := range events {
		switch e.Type {
		case "message.final":
			final = e.Data
		case "debug.retrieval":
			debug = e.Data
		}
	}
	require.NotNil(t, final)
	text, _ := final["text"].(string)
	for _, gate := range []string{"Gate 1: quality", "Gate 2: reliability", "Gate 3: security"} {
		require.Contains(t, text, gate)
	}
	require.Contains(t, text, "nDCG@10 of at least 0.31", "what the quality gate asks")
	cited := map[string]bool{}
	for _, c := range final["citations"].([]any) {
		cited[c.(map[string]any)["chunk_id"].(string)] = true
	}
	for _, chunk := range []string{"agent2-release-gates:1", "agent2-release-gates:2", "agent2-release-gates:3"} {
		require.True(t, cited[chunk], "the chunk defining a gate is cited: %s in %v", chunk, cited)
	}
	require.Equal(t, map[string]any{"lexical_weight": 1.0, "vector_weight": 0.0, "candidate_depth": 50.0, "feedback": false}, debug["ranking"],
		"debug.retrieval echoes the corpus's ranking settings")
}

func TestRunOverSSE(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"TTS_PROVIDER=fake", "AUDIO_DIR=" + t.TempDir()})
	_, err := run(t, p.env, "", "seed-demo")
	require.NoError(t, err)
	_, reader := p.createKey("t1", "reader")
	_, admin := p.createKey("t1", "admin")

	res, events := p.runStream(reader, `{"session_id":"e2e","corpus_id":"c1","message":"What are the release gates for Agent 2.0?","top_k":5,"audio":true}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	var order []string
	for i, e := range events {
		require.EqualValues(t, i+1, e.Seq)
		require.Equal(t, strconv.Itoa(i+1), e.id)
		require.Equal(t, e.typ, e.Type)
		require.Equal(t, res.Header.Get("X-Request-Id"), e.ReqID)
		if e.Type != "token.delta" || order[len(order)-1] != "token.delta" {
			order = append(order, e.Type)
		}
	}
	require.Equal(t, []string{"request.accepted", "token.delta", "message.final", "audio.ready", "done"}, order)
	final := events[len(events)-3].Data
	require.Contains(t, final["text"], "release gate")
	cites := final["citations"].([]any)
	require.NotEmpty(t, cites)
	require.Equal(t, "agent2-release-gates", cites[0].(map[string]any)["document_id"])

	audio := events[len(events)-2].Data
	got, err := http.Get(p.HTTP + audio["audio_url"].(string)) // public: the id is the capability
	require.NoError(t, err)
	mp3, _ := io.ReadAll(got.Body)
	got.Body.Close()
	require.Equal(t, http.StatusOK, got.StatusCode)
	require.Equal(t, "audio/mpeg", got.Header.Get("Content-Type"))
	require.Equal(t, []byte{0xFF, 0xFB}, mp3[:2])
	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/audio/0123456789abcdef0123456789abcdef.mp3", "", "").Status)

	// Errors before the stream are JSON.
	for body, code := range map[string]string{
		`{"session_id":"e2e","corpus_id":"nope","message":"hi"}`:                              "NOT_FOUND",
		`{"session_id":"e2e","corpus_id":"c1","message":"hi","top_k":99}`:                     "INVALID_ARGUMENT",
		`{"corpus_id":"c1","message":"hi"}`:                                                   "INVALID_ARGUMENT",
		`{"session_id":"e2e","corpus_id":"c1","message":"` + strings.Repeat("a", 4001) + `"}`: "MESSAGE_TOO_LONG",
	} {
		res, events := p.runStream(reader, body)
		require.Nil(t, events)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"))
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&env))
		require.Equal(t, code, env.Error.Code, body)
	}

	_, events = p.runStream(reader, `{"session_id":"e2e","corpus_id":"c1","message":"again"}`, "Last-Event-ID", "3")
	require.Len(t, events, 2)
	require.Equal(t, "resume.unsupported", events[0].Type)
	require.Equal(t, "done", events[1].Type)

	var evs []map[string]any
	require.Eventually(t, func() bool {
		evs = p.auditEvents(admin, "event_type=run.invoked")
		return len(evs) == 1
	}, 5*time.Second, 50*time.Millisecond, "the one run that started is audited; refused ones are not")
	require.NotContains(t, string(mustJSON(t, evs)), "release gates", "the audit log never holds the message")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

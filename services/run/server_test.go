package run_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/auth"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/logging/logtest"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/run"
	"github.com/nexusrag/nexusrag/services/run/generators"
	"github.com/nexusrag/nexusrag/services/run/speech"
)

// recording wraps a generator and keeps the prompts it was given.
type recording struct {
	run.Generator
	mu      sync.Mutex
	prompts []generators.Prompt
}

func (r *recording) Generate(ctx context.Context, p generators.Prompt, delta func(string) error) (string, error) {
	r.mu.Lock()
	r.prompts = append(r.prompts, p)
	r.mu.Unlock()
	return r.Generator.Generate(ctx, p, delta)
}

type failingSpeaker struct{}

func (failingSpeaker) Speak(context.Context, string) ([]byte, error) {
	return nil, errors.New("voice service down")
}

type harness struct {
	pool      *pgxpool.Pool
	retrieval retrievalv1.RetrievalServiceClient
	audit     *audittest.Recorder
	// logs holds what the run servers log (JSON, with request ids).
	logs *logtest.Buffer
	// store, when set, is the run store of the clients made after (default: on pool).
	store *run.Store
	// entitlements, when set, is the plan of the clients made after (default: every feature).
	entitlements entitlements.Checker
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations(), run.Migrations())
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&retrievalv1.RetrievalService_ServiceDesc, retrieval.NewServer(retrieval.NewStore(pool),
		retrieval.NewRouter(retrieval.NewLocalIndex(retrieval.NewStore(pool), retrieval.NewHashEmbedder(retrieval.DefaultDim)), nil, nil, nil, nil),
		entitlements.Everything, &audittest.Recorder{}, logging.Discard()))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	h := &harness{pool: pool, retrieval: retrievalv1.NewRetrievalServiceClient(conn), audit: &audittest.Recorder{}, logs: &logtest.Buffer{}}
	ctx := as("t1")
	_, err = h.retrieval.UpdateCorpus(principal.With(context.Background(), principal.Principal{TenantID: "t1", Role: apiv1.Role_ROLE_EDITOR}),
		&retrievalv1.UpdateCorpusRequest{CorpusId: "c1", AllowMissing: true})
	require.NoError(t, err)
	_ = ctx
	for i, text := range []string{
		"Agent 2.0 ships only when the release gates are green. The quality gate needs an nDCG of 0.31.",
		"The rollout happens in waves. A wave can be rolled back within ten minutes.",
		"Pasta cooks in nine minutes in salted water.",
	} {
		_, err := h.retrieval.UpsertChunks(context.Background(), &retrievalv1.UpsertChunksRequest{TenantId: "t1", CorpusId: "c1",
			DocumentId: fmt.Sprintf("doc%d", i+1), Chunks: []*retrievalv1.ChunkInput{{Text: text}}})
		require.NoError(t, err)
	}
	return h
}

func as(tenant string) context.Context {
	return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k", Role: apiv1.Role_ROLE_READER})
}

func (h *harness) client(t *testing.T, cfg run.Config, gen run.Generator, speaker run.Speaker) runv1.RunServiceClient {
	t.Helper()
	if cfg.AudioDir == "" {
		cfg.AudioDir = t.TempDir()
	}
	if cfg.MaxMessageChars == 0 {
		cfg.MaxMessageChars = 200
	}
	if cfg.HistoryChars == 0 {
		cfg.HistoryChars = 1000
	}
	if cfg.TTSTimeout == 0 {
		cfg.TTSTimeout = 5 * time.Second
	}
	log, err := logging.New(h.logs, "json", "info")
	require.NoError(t, err)
	store := h.store
	if store == nil {
		store = run.NewStore(h.pool)
	}
	ent := h.entitlements
	if ent == nil {
		ent = entitlements.Everything
	}
	s, err := run.NewServer(cfg, store, h.retrieval, gen, speaker, ent, h.audit, log)
	require.NoError(t, err)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&runv1.RunService_ServiceDesc, s)
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return runv1.NewRunServiceClient(conn)
}

// collect runs a request as tenant t1's reader and returns its events.
func collect(t *testing.T, c runv1.RunServiceClient, req *runv1.RunRequest) ([]*runv1.RunResponse, error) {
	t.Helper()
	return collectAs(t, as("t1"), c, req)
}

// collectAs runs a request as ctx's principal and returns its events.
func collectAs(t *testing.T, ctx context.Context, c runv1.RunServiceClient, req *runv1.RunRequest) ([]*runv1.RunResponse, error) {
	t.Helper()
	stream, err := c.Run(ctx, req)
	require.NoError(t, err)
	var out []*runv1.RunResponse
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

// name is the SSE name of an event (its oneof field's sse_event option).
func name(e *runv1.RunResponse) string {
	m := e.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("event"))
	return proto.GetExtension(fd.Options(), apiv1.E_SseEvent).(string)
}

func types(evs []*runv1.RunResponse) []string {
	var out []string
	for i, e := range evs {
		if name(e) == "token.delta" && i > 0 && name(evs[i-1]) == "token.delta" {
			continue // token.delta* counts once
		}
		out = append(out, name(e))
	}
	return out
}

func TestEventOrder(t *testing.T) {
	h := newHarness(t)
	vertexMissing := generators.NewVertex(context.Background(), generators.VertexConfig{}) // no project: VERTEX_CONFIG_MISSING
	tests := []struct {
		name    string
		gen     run.Generator
		speaker run.Speaker
		debug   bool
		audio   bool
		want    []string
		errCode string
	}{
		{"success", generators.Extractive{}, nil, false, false, []string{"request.accepted", "token.delta", "message.final", "done"}, ""},
		{"debug events", generators.Extractive{}, nil, true, false, []string{"request.accepted", "debug.retrieval", "token.delta", "message.final", "done"}, ""},
		{"provider error", vertexMissing, nil, false, false, []string{"request.accepted", "error", "done"}, generators.CodeVertexConfigMissing},
		{"audio ok", generators.Extractive{}, speech.Fake{}, false, true, []string{"request.accepted", "token.delta", "message.final", "audio.ready", "done"}, ""},
		{"audio error", generators.Extractive{}, failingSpeaker{}, false, true, []string{"request.accepted", "token.delta", "message.final", "audio.error", "done"}, ""},
		{"audio asked, tts off", generators.Extractive{}, nil, false, true, []string{"request.accepted", "token.delta", "message.final", "done"}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.client(t, run.Config{DebugEvents: tt.debug}, tt.gen, tt.speaker)
			session := fmt.Sprintf("s-%d", i)
			evs, err := collect(t, c, &runv1.RunRequest{SessionId: session, CorpusId: "c1", Message: "What are the release gates for Agent 2.0?", TopK: 3, Audio: tt.audio})
			require.NoError(t, err)
			require.Equal(t, tt.want, types(evs))
			last := evs[len(evs)-2]
			switch name(last) {
			case "error":
				require.Equal(t, tt.errCode, last.GetError().GetCode())
				var users int
				require.NoError(t, h.pool.QueryRow(context.Background(),
					`SELECT count(*) FROM run.messages WHERE session_id = $1 AND role = 'user'`, session).Scan(&users))
				require.Equal(t, 1, users, "the user turn was saved before generation failed")
				var status string
				require.NoError(t, h.pool.QueryRow(context.Background(),
					`SELECT status FROM run.messages WHERE session_id = $1 AND role = 'assistant'`, session).Scan(&status))
				require.Equal(t, run.TurnFailed, status, "and the turn ended failed, not unanswered")
			case "audio.ready":
				d := last.GetAudioReady()
				require.Equal(t, "audio/mpeg", d.GetMime())
				require.Regexp(t, `^/v1/audio/[0-9a-f]{32}\.mp3$`, d.GetAudioUrl())
				res, err := c.GetAudio(context.Background(), &runv1.GetAudioRequest{AudioId: d.GetAudioId()})
				require.NoError(t, err)
				require.Equal(t, []byte{0xFF, 0xFB}, res.GetMp3()[:2], "an MPEG audio frame")
			case "audio.error":
				require.Equal(t, run.CodeTTSError, last.GetAudioError().GetCode())
			}
		})
	}
}

// outage is a generator that takes the run store's database away before it answers.
type outage struct {
	run.Generator
	down *atomic.Bool
	pool *pgxpool.Pool
}

func (o outage) Generate(ctx context.Context, p generators.Prompt, delta func(string) error) (string, error) {
	o.down.Store(true)
	o.pool.Reset() // every open connection closes; new ones are refused
	return o.Generator.Generate(ctx, p, delta)
}

// A database lost in the middle of a run is a temporary state of the platform, named as
// such (DEPENDENCY_UNAVAILABLE, retry), not an internal error.
func TestLosingTheDatabaseMidRunSaysSo(t *testing.T) {
	h := newHarness(t)
	cfg, err := pgxpool.ParseConfig(h.pool.Config().ConnString())
	require.NoError(t, err)
	var down atomic.Bool
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if down.Load() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	h.store = run.NewStore(pool)
	c := h.client(t, run.Config{}, outage{Generator: generators.Extractive{}, down: &down, pool: pool}, nil)

	evs, err := collect(t, c, &runv1.RunRequest{SessionId: "s-outage", CorpusId: "c1", Message: "What are the release gates for Agent 2.0?"})
	require.NoError(t, err)
	require.Equal(t, []string{"request.accepted", "token.delta", "error", "done"}, types(evs))
	failure := evs[len(evs)-2].GetError()
	require.Equal(t, grpcx.CodeDependencyUnavailable, failure.GetCode())
	require.Contains(t, failure.GetMessage(), "retry")
}

func TestFinalMessageIsGroundedAndCited(t *testing.T) {
	h := newHarness(t)
	c := h.client(t, run.Config{}, generators.Extractive{}, nil)
	evs, err := collect(t, c, &runv1.RunRequest{SessionId: "s1", CorpusId: "c1", Message: "What are the release gates for Agent 2.0?"})
	require.NoError(t, err)
	var deltas strings.Builder
	var final *runv1.Final
	for _, e := range evs {
		switch {
		case e.GetTokenDelta() != nil:
			deltas.WriteString(e.GetTokenDelta().GetText())
		case e.GetFinal() != nil:
			final = e.GetFinal()
		}
	}
	require.Equal(t, final.GetText(), deltas.String(), "the deltas add up to the final text")
	require.Contains(t, final.GetText(), "release gates are green")
	require.Contains(t, final.GetText(), "[1]")
	require.NotEmpty(t, final.GetCitations())
	first := final.GetCitations()[0]
	require.Equal(t, "doc1", first.GetDocumentId())
	require.Equal(t, "doc1:0", first.GetChunkId())
	require.Positive(t, first.GetScore())

	// Nothing relevant: an honest answer without citations.
	evs, err = collect(t, c, &runv1.RunRequest{SessionId: "s1", CorpusId: "c1", Message: "zebra quantum saxophone"})
	require.NoError(t, err)
	final = evs[len(evs)-2].GetFinal()
	require.Equal(t, "I could not find anything about that in this corpus.", final.GetText())
	require.Empty(t, final.GetCitations())
}

func TestValidationErrorsComeBeforeTheStream(t *testing.T) {
	h := newHarness(t)
	c := h.client(t, run.Config{}, generators.Extractive{}, nil)
	tests := []struct {
		name string
		req  *runv1.RunRequest
		code string
	}{
		{"no session", &runv1.RunRequest{CorpusId: "c1", Message: "hi"}, apierr.CodeInvalidArgument},
		{"no corpus", &runv1.RunRequest{SessionId: "s", Message: "hi"}, apierr.CodeInvalidArgument},
		{"no message", &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "  "}, apierr.CodeInvalidArgument},
		{"message too long", &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: strings.Repeat("a", 201)}, "MESSAGE_TOO_LONG"},
		{"top_k too big", &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "hi", TopK: 51}, apierr.CodeInvalidArgument},
		{"top_k negative", &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "hi", TopK: -1}, apierr.CodeInvalidArgument},
		{"unknown corpus", &runv1.RunRequest{SessionId: "s", CorpusId: "nope", Message: "hi"}, apierr.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := collect(t, c, tt.req)
			require.Empty(t, evs, "no event before a validation error")
			e, _ := apierr.FromStatus(status.Convert(err))
			require.Equal(t, tt.code, e.Code, err)
		})
	}
	require.Empty(t, h.audit.Events(), "refused runs are not audited as invoked")
}

// Speech is a feature of the plan: a run asking for audio without it is refused before
// its stream starts; without audio the same tenant runs.
func TestAudioNeedsTheTTSFeature(t *testing.T) {
	h := newHarness(t)
	h.entitlements = entitlements.Static{entitlements.RetrievalLocal}
	c := h.client(t, run.Config{}, generators.Extractive{}, speech.Fake{})
	evs, err := collect(t, c, &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "release gates?", Audio: true})
	require.Empty(t, evs)
	e, _ := apierr.FromStatus(status.Convert(err))
	require.Equal(t, entitlements.CodeFeatureNotEnabled, e.Code)
	require.Equal(t, entitlements.TTS, e.Details["feature_key"])
	evs, err = collect(t, c, &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "release gates?"})
	require.NoError(t, err)
	require.Equal(t, []string{"request.accepted", "token.delta", "message.final", "done"}, types(evs))
}

func TestSessionMemoryAcrossTurns(t *testing.T) {
	h := newHarness(t)
	gen := &recording{Generator: generators.Extractive{}}
	c := h.client(t, run.Config{}, gen, nil)
	_, err := collect(t, c, &runv1.RunRequest{SessionId: "chat", CorpusId: "c1", Message: "What are the release gates?"})
	require.NoError(t, err)
	_, err = collect(t, c, &runv1.RunRequest{SessionId: "chat", CorpusId: "c1", Message: "And how fast is a rollback?"})
	require.NoError(t, err)
	_, err = collect(t, c, &runv1.RunRequest{SessionId: "other", CorpusId: "c1", Message: "Fresh start"})
	require.NoError(t, err)

	require.Len(t, gen.prompts, 3)
	require.Empty(t, gen.prompts[0].History)
	second := gen.prompts[1].History
	require.Len(t, second, 2, "the first turn's question and answer")
	require.Equal(t, generators.Turn{Role: "user", Content: "What are the release gates?"}, second[0])
	require.Equal(t, "assistant", second[1].Role)
	require.Empty(t, gen.prompts[2].History, "sessions do not mix")

	var checkpoints int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM run.checkpoints WHERE session_id = 'chat'`).Scan(&checkpoints))
	require.Equal(t, 8, checkpoints, "load_session, retrieve, generate, persist per run")
	got := h.audit.Events()
	require.Len(t, got, 3)
	require.Equal(t, audit.TypeRunInvoked, got[0].Type)
	require.NotContains(t, fmt.Sprint(got[0].Metadata), "release gates", "no message text in the audit log")
}

// blocking streams one delta, then waits for the run's context to end.
type blocking struct{ started chan struct{} }

func (b blocking) Generate(ctx context.Context, _ generators.Prompt, delta func(string) error) (string, error) {
	if err := delta("thinking "); err != nil {
		return "", err
	}
	close(b.started)
	<-ctx.Done()
	return "", ctx.Err()
}

func TestClientGoingAwayCancelsTheRun(t *testing.T) {
	h := newHarness(t)
	gen := blocking{started: make(chan struct{})}
	c := h.client(t, run.Config{}, gen, nil)
	_, err := c.GetAudio(context.Background(), &runv1.GetAudioRequest{AudioId: "warm-up"}) // connects the lazy client first
	require.Equal(t, codes.NotFound, status.Code(err))
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(requestid.With(as("t1"), "req-gone"))
	stream, err := c.Run(ctx, &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "release gates"})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.NoError(t, err)
	<-gen.started
	cancel()
	for err == nil { // the delta streamed before the cancel may still arrive
		_, err = stream.Recv()
	}
	require.Equal(t, codes.Canceled, status.Code(err))
	if !waitUntil(func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: before %d, now %d\n%s", before, runtime.NumGoroutine(), buf[:n])
	}

	// The session keeps the turn as cancelled, with what was streamed, not a dangling question.
	type message struct{ Role, Content, Status string }
	var got []message
	require.Eventually(t, func() bool {
		rows, err := h.pool.Query(context.Background(), `SELECT role, content, status FROM run.messages WHERE session_id = 's' ORDER BY seq`)
		require.NoError(t, err)
		got, err = pgx.CollectRows(rows, pgx.RowToStructByPos[message])
		require.NoError(t, err)
		return len(got) == 2
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, []message{{"user", "release gates", run.TurnCancelled}, {"assistant", "thinking ", run.TurnCancelled}}, got)
	require.Contains(t, h.logs.String(), `"level":"INFO","msg":"run cancelled: the client went away"`)
	require.Contains(t, h.logs.String(), `"request_id":"req-gone"`)

	// The next run of the session is not shown the abandoned turn.
	next := &recording{Generator: generators.Extractive{}}
	_, err = collect(t, h.client(t, run.Config{}, next, nil), &runv1.RunRequest{SessionId: "s", CorpusId: "c1", Message: "What are the release gates?"})
	require.NoError(t, err)
	require.Len(t, next.prompts, 1)
	require.Empty(t, next.prompts[0].History, "cancelled turns are left out of the history")
}

// vertexFake serves genai's Vertex streaming endpoint with scripted chunks.
func vertexFake(t *testing.T, chunks []string, failAfter bool, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Contains(t, r.URL.Path, "/publishers/google/models/gemini-test:streamGenerateContent")
		require.Equal(t, "Bearer test-token", r.Header.Get("Authorization"))
		if status != 0 {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"code":` + fmt.Sprint(status) + `,"message":"denied","status":"PERMISSION_DENIED"}}`))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range chunks {
			fmt.Fprintf(w, "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":%q}]}}]}\n\n", c)
			w.(http.Flusher).Flush()
		}
		if failAfter {
			panic(http.ErrAbortHandler) // the connection drops mid-stream
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type staticToken struct{}

func (staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: "test-token", Type: "Bearer"}, nil
}

func TestVertexGeneratorAgainstAFake(t *testing.T) {
	h := newHarness(t)
	creds := auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken{}})
	newGen := func(url string) *generators.Vertex {
		return generators.NewVertex(context.Background(), generators.VertexConfig{Project: "p", Location: "us-central1", Model: "gemini-test", BaseURL: url, Credentials: creds})
	}
	c := h.client(t, run.Config{}, newGen(vertexFake(t, []string{"The gates are ", "quality, reliability and security [1]."}, false, 0)), nil)
	evs, err := collect(t, c, &runv1.RunRequest{SessionId: "v", CorpusId: "c1", Message: "release gates?"})
	require.NoError(t, err)
	require.Equal(t, []string{"request.accepted", "token.delta", "message.final", "done"}, types(evs))
	final := evs[len(evs)-2].GetFinal()
	require.Equal(t, "The gates are quality, reliability and security [1].", final.GetText())
	require.Len(t, final.GetCitations(), 1)

	c = h.client(t, run.Config{}, newGen(vertexFake(t, []string{"Half an answer"}, true, 0)), nil)
	evs, err = collect(t, c, &runv1.RunRequest{SessionId: "v2", CorpusId: "c1", Message: "release gates?"})
	require.NoError(t, err)
	require.Equal(t, []string{"request.accepted", "token.delta", "error", "done"}, types(evs), "mid-stream failure")
	require.Equal(t, generators.CodeLLMError, evs[len(evs)-2].GetError().GetCode())

	c = h.client(t, run.Config{}, newGen(vertexFake(t, nil, false, http.StatusForbidden)), nil)
	evs, err = collect(t, c, &runv1.RunRequest{SessionId: "v3", CorpusId: "c1", Message: "release gates?"})
	require.NoError(t, err)
	require.Equal(t, generators.CodeVertexAuth, evs[len(evs)-2].GetError().GetCode())
}

// waitUntil polls cond for up to 5 s in the calling goroutine (require.Eventually polls
// from goroutines of its own, which a goroutine count would see).
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// TestSaturationAnswersBusyAtOnce: runs beyond RUN_MAX_CONCURRENCY are refused at once.
func TestSaturationAnswersBusyAtOnce(t *testing.T) {
	h := newHarness(t)
	gen := &gate{entered: make(chan struct{}, 8), release: make(chan struct{})}
	c := h.client(t, run.Config{MaxConcurrency: 2}, gen, nil)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			_, err := collect(t, c, &runv1.RunRequest{SessionId: fmt.Sprintf("busy-%d", i), CorpusId: "c1", Message: "release gates"})
			require.NoError(t, err)
		})
	}
	<-gen.entered
	<-gen.entered
	start := time.Now()
	evs, err := collect(t, c, &runv1.RunRequest{SessionId: "busy-3", CorpusId: "c1", Message: "release gates"})
	require.Empty(t, evs)
	e, _ := apierr.FromStatus(status.Convert(err))
	require.Equal(t, "SERVICE_BUSY", e.Code)
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, "1", e.Details["retry_after_s"])
	require.Less(t, time.Since(start), time.Second, "refused at once, not queued")
	close(gen.release)
	wg.Wait()
	_, err = collect(t, c, &runv1.RunRequest{SessionId: "busy-4", CorpusId: "c1", Message: "release gates"})
	require.NoError(t, err, "capacity is given back")
}

// gate holds every generation until release is closed.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Generate(ctx context.Context, _ generators.Prompt, delta func(string) error) (string, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return "done", delta("done")
}

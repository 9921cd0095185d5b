package gateway

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sse "github.com/tmaxmax/go-sse"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// scripted are the events a scriptedRun sends, by SSE name.
var scripted = map[string]*runv1.RunResponse{
	"request.accepted": {Event: &runv1.RunResponse_Accepted{Accepted: &runv1.Accepted{RunId: "run-1", SessionId: "s", CorpusId: "c"}}},
	"token.delta":      {Event: &runv1.RunResponse_TokenDelta{TokenDelta: &runv1.TokenDelta{Text: "Hello "}}},
	"message.final": {Event: &runv1.RunResponse_Final{Final: &runv1.Final{Text: "Hello [1]", SessionId: "s", Provider: "local_pgvector",
		Citations: []*runv1.Citation{{Marker: 1, DocumentId: "d1", ChunkId: "d1:0", Score: 0.5}}}}},
	"done": {Event: &runv1.RunResponse_Done{Done: &runv1.Done{}}},
}

// scriptedRun is a RunService whose events the test releases one by one.
type scriptedRun struct {
	runv1.UnimplementedRunServiceServer
	release  chan string // event types to send; closing it ends the stream
	canceled chan struct{}
}

func (s *scriptedRun) Run(req *runv1.RunRequest, stream runv1.RunService_RunServer) error {
	if req.GetMessage() == "" {
		return apierr.InvalidArgument("message", "message is required")
	}
	for {
		select {
		case typ, ok := <-s.release:
			if !ok {
				return nil
			}
			if err := stream.Send(scripted[typ]); err != nil {
				return err
			}
		case <-stream.Context().Done():
			close(s.canceled)
			return stream.Context().Err()
		}
	}
}

type sseHarness struct {
	srv   *httptest.Server
	run   *scriptedRun
	ticks chan time.Time
}

func newSSEHarness(t *testing.T) *sseHarness {
	t.Helper()
	run := &scriptedRun{release: make(chan string), canceled: make(chan struct{})}
	g := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	g.Register(&runv1.RunService_ServiceDesc, run)
	conn, stop, err := grpcx.InProcess(g)
	require.NoError(t, err)
	t.Cleanup(stop)
	h := &sseHarness{run: run, ticks: make(chan time.Time)}
	stream := &sseStream{client: runv1.NewRunServiceClient(conn), heartbeat: time.Hour,
		after: func(time.Duration) <-chan time.Time { return h.ticks },
		now:   func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }}
	handler := stream.handler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := principal.With(withState(r.Context(), &reqState{requestID: "req-1"}), principal.Principal{TenantID: "t1", Role: apiv1.Role_ROLE_READER})
		r = r.WithContext(ctx)
		handler(w, r, nil)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *sseHarness) post(t *testing.T, ctx context.Context, body string, headers ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = res.Body.Close() })
	return res
}

type payload struct {
	Type      string         `json:"type"`
	RequestID string         `json:"request_id"`
	Seq       int64          `json:"seq"`
	TS        string         `json:"ts"`
	Data      map[string]any `json:"data"`
}

// reader returns the next event of a stream each time it is called.
func reader(t *testing.T, res *http.Response) func() (sse.Event, payload) {
	t.Helper()
	pull, stop := iter.Pull2(sse.Read(res.Body, nil))
	t.Cleanup(stop)
	return func() (sse.Event, payload) { return next(t, pull) }
}

func next(t *testing.T, pull func() (sse.Event, error, bool)) (sse.Event, payload) {
	t.Helper()
	got, err, ok := pull()
	require.True(t, ok, "the stream ended")
	require.NoError(t, err)
	var p payload
	require.NoError(t, json.Unmarshal([]byte(got.Data), &p), got.Data)
	return got, p
}

func TestSSEFramesEventsAndHeartbeats(t *testing.T) {
	h := newSSEHarness(t)
	go func() { h.run.release <- "request.accepted" }()
	res := h.post(t, context.Background(), `{"session_id":"s","corpus_id":"c","message":"hi"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	require.Equal(t, "no", res.Header.Get("X-Accel-Buffering"))
	events := reader(t, res)

	want := []string{"request.accepted", "heartbeat", "token.delta", "heartbeat", "message.final", "done"}
	for i, typ := range want {
		if i > 0 {
			if typ == "heartbeat" {
				h.ticks <- time.Time{} // the stream has been idle for the interval
			} else {
				h.run.release <- typ
			}
		}
		e, p := events()
		require.Equal(t, typ, e.Type)
		require.Equal(t, typ, p.Type)
		require.EqualValues(t, i+1, p.Seq, "seq counts every event, heartbeats included")
		require.Equal(t, strconv.Itoa(i+1), e.LastEventID, "the SSE id is the seq")
		require.Equal(t, "req-1", p.RequestID)
		switch typ {
		case "heartbeat":
			require.Equal(t, "2026-11-25T12:00:00Z", p.TS)
		case "token.delta":
			require.Equal(t, map[string]any{"text": "Hello "}, p.Data)
		case "message.final":
			require.Equal(t, map[string]any{"text": "Hello [1]", "session_id": "s", "provider": "local_pgvector",
				"citations": []any{map[string]any{"marker": 1.0, "document_id": "d1", "chunk_id": "d1:0", "score": 0.5, "section": ""}}}, p.Data)
		}
	}
	close(h.run.release)
	_, err := res.Body.Read(make([]byte, 1))
	require.Error(t, err, "the stream ends after the run")
}

func TestSSEErrorsBeforeTheStreamAreJSON(t *testing.T) {
	h := newSSEHarness(t)
	res := h.post(t, context.Background(), `{"session_id":"s","corpus_id":"c"}`)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.Equal(t, "application/json", res.Header.Get("Content-Type"))
	var body errorEnvelope
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, apierr.CodeInvalidArgument, body.Error.Code)
	require.Equal(t, "message", body.Error.Details["field"])

	res = h.post(t, context.Background(), `{"session_id":`)
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, CodeMalformedRequest, body.Error.Code)
}

func TestSSEResumeIsRefused(t *testing.T) {
	h := newSSEHarness(t)
	res := h.post(t, context.Background(), `{"session_id":"s","corpus_id":"c","message":"hi"}`, "Last-Event-ID", "7")
	require.Equal(t, http.StatusOK, res.StatusCode)
	events := reader(t, res)
	e, p := events()
	require.Equal(t, "resume.unsupported", e.Type)
	require.Equal(t, "7", p.Data["last_event_id"])
	e, _ = events()
	require.Equal(t, "done", e.Type)
}

func TestSSEClientGoingAwayCancelsTheRun(t *testing.T) {
	h := newSSEHarness(t)
	go func() { h.run.release <- "request.accepted" }()
	ctx, cancel := context.WithCancel(context.Background())
	res := h.post(t, ctx, `{"session_id":"s","corpus_id":"c","message":"hi"}`)
	reader(t, res)()
	cancel()
	select {
	case <-h.run.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the run was not cancelled when the client went away")
	}
}

// TestEveryRunEventHasAnSSEName: each kind of the run contract's oneof names its Server-
// Sent Event, and its data is the kind's message with every field present.
func TestEveryRunEventHasAnSSEName(t *testing.T) {
	kinds := runEventField.Fields()
	require.Equal(t, 8, kinds.Len())
	names := map[string]bool{}
	for i := 0; i < kinds.Len(); i++ {
		fd := kinds.Get(i)
		ev := &runv1.RunResponse{}
		ev.ProtoReflect().Set(fd, ev.ProtoReflect().NewField(fd))
		name, data, err := sseOfRunEvent(ev)
		require.NoError(t, err, fd.Name())
		require.NotEmpty(t, name)
		require.False(t, names[name], "%s named twice", name)
		names[name] = true
		require.Len(t, data, fd.Message().Fields().Len(), "%s: every field present, even empty", name)
	}
	_, _, err := sseOfRunEvent(&runv1.RunResponse{})
	require.Error(t, err, "an event of no kind is not written")
}

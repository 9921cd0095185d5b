package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
)

// runRoute is the streaming route: not replayable, so Idempotency-Key does not apply.
const runRoute = "/v1/run"

// sseStream serves POST /v1/run as Server-Sent Events. Errors the run service answers
// before its first event (validation, unknown corpus, a too-low role) are ordinary JSON
// errors in the envelope; after that every event is written as
//
//	id: <seq>
//	event: <type>
//	data: {"type", "request_id", "seq", "data"}
//
// with seq counted by the gateway from 1 (heartbeats included), and a heartbeat event
// whenever the stream has been idle for the interval. A client that goes away cancels
// the run through the request context.
type sseStream struct {
	client    runv1.RunServiceClient
	heartbeat time.Duration
	// after is time.After; tests inject a clock they control.
	after func(time.Duration) <-chan time.Time
	now   func() time.Time
	// stats counts streams started, completed and errored, and those open (nil: none).
	stats *reqstats.Stats
}

// countStream counts a started stream and, when the handler returns, how it ended:
// completed (the run's last event sent), errored (an error event sent), or neither (the
// client went away).
func (s *sseStream) countStream(out *sseWriter) func(completed bool) {
	if s.stats == nil {
		return func(bool) {}
	}
	s.stats.Count("runs:started", 1)
	s.stats.Gauge("runs_open", 1)
	return func(completed bool) {
		s.stats.Gauge("runs_open", -1)
		switch {
		case out.errored:
			s.stats.Count("runs:errored", 1)
		case completed:
			s.stats.Count("runs:completed", 1)
		}
	}
}

func (s *sseStream) handler() runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		if r.Header.Get("Last-Event-ID") != "" {
			s.refuseResume(w, r)
			return
		}
		req, err := decodeRun(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		var reader sync.WaitGroup
		defer reader.Wait() // after cancel below: the reader goroutine has ended when the handler returns
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		stream, err := s.client.Run(ctx, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		first, err := stream.Recv()
		if err != nil {
			writeError(w, r, err)
			return
		}
		events := make(chan *runv1.RunResponse)
		failed := make(chan error, 1)
		reader.Go(func() { // ends when the stream ends or ctx is cancelled (deferred above)
			defer close(events)
			for {
				ev, err := stream.Recv()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						failed <- err
					}
					return
				}
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		})
		out := s.start(w, r)
		completed := false
		ended := s.countStream(out)
		defer func() { ended(completed) }()
		if out.runEvent(first) != nil {
			return
		}
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					completed = true
					select {
					case err := <-failed:
						// The run service failed mid-stream (it went away): say so, then end.
						_, e := httpError(err)
						if status.Code(err) != codes.Canceled {
							_ = out.event("error", map[string]any{"code": e.Code, "message": e.Message})
							_ = out.event("done", map[string]any{})
						}
					default:
					}
					return
				}
				if out.runEvent(ev) != nil {
					return // the client went away; the deferred cancel stops the run
				}
			case <-s.after(s.heartbeat):
				if out.heartbeat(s.now()) != nil {
					return
				}
			case <-r.Context().Done():
				return
			}
		}
	}
}

// refuseResume answers a reconnect: runs cannot be resumed, the client must start again.
func (s *sseStream) refuseResume(w http.ResponseWriter, r *http.Request) {
	out := s.start(w, r)
	if out.event("resume.unsupported", map[string]any{
		"last_event_id": r.Header.Get("Last-Event-ID"),
		"message":       "runs cannot be resumed: send the request again without Last-Event-ID to start a new run",
	}) == nil {
		_ = out.event("done", map[string]any{})
	}
}

func decodeRun(r *http.Request) (*runv1.RunRequest, error) {
	req := &runv1.RunRequest{}
	return req, decodeJSON(r, req)
}

// sseWriter writes events and flushes each one.
type sseWriter struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	requestID string
	seq       int64
	errored   bool // an error event was written
}

func (s *sseStream) start(w http.ResponseWriter, r *http.Request) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return &sseWriter{w: w, rc: http.NewResponseController(w), requestID: stateOf(r.Context()).requestID}
}

func (o *sseWriter) event(eventType string, data map[string]any) error {
	o.seq++
	if eventType == "error" {
		o.errored = true
	}
	if data == nil {
		data = map[string]any{}
	}
	return o.write(eventType, map[string]any{"type": eventType, "request_id": o.requestID, "seq": o.seq, "data": data})
}

// runEvent writes an event of the run contract: named by the sse_event option of the
// oneof field that is set, its data the field's message in JSON.
func (o *sseWriter) runEvent(ev *runv1.RunResponse) error {
	name, data, err := sseOfRunEvent(ev)
	if err != nil {
		return err
	}
	return o.event(name, data)
}

// runEventField is the oneof every run event is one field of.
var runEventField = (&runv1.RunResponse{}).ProtoReflect().Descriptor().Oneofs().ByName("event")

// sseOfRunEvent decodes ev into its SSE name and data.
func sseOfRunEvent(ev *runv1.RunResponse) (string, map[string]any, error) {
	m := ev.ProtoReflect()
	fd := m.WhichOneof(runEventField)
	if fd == nil {
		return "", nil, errors.New("run event without a kind")
	}
	name, _ := proto.GetExtension(fd.Options(), apiv1.E_SseEvent).(string)
	if name == "" {
		return "", nil, fmt.Errorf("run event %s has no sse_event option", fd.Name())
	}
	b, err := jsonOptions.Marshal(m.Get(fd).Message().Interface())
	if err != nil {
		return "", nil, fmt.Errorf("encode %s event: %w", name, err)
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return "", nil, fmt.Errorf("encode %s event: %w", name, err)
	}
	return name, data, nil
}

func (o *sseWriter) heartbeat(now time.Time) error {
	o.seq++
	return o.write("heartbeat", map[string]any{"type": "heartbeat", "ts": now.UTC().Format(time.RFC3339Nano), "request_id": o.requestID, "seq": o.seq})
}

func (o *sseWriter) write(eventType string, payload map[string]any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", eventType, err)
	}
	if _, err := fmt.Fprintf(o.w, "id: %s\nevent: %s\ndata: %s\n\n", strconv.FormatInt(o.seq, 10), eventType, b); err != nil {
		return err
	}
	return o.rc.Flush()
}

// audioFile serves GET /v1/audio/{audio_id}.mp3: public, since the ids cannot be guessed
// (128 random bits) and audio players cannot send an API key.
func audioFile(client runv1.RunServiceClient) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		id, ok := strings.CutSuffix(params["file"], ".mp3")
		if !ok {
			writeError(w, r, apierr.NotFound("audio", params["file"]))
			return
		}
		res, err := client.GetAudio(r.Context(), &runv1.GetAudioRequest{AudioId: id})
		if err != nil {
			writeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(res.GetMp3())))
		w.Header().Set("Cache-Control", "private, max-age=86400, immutable")
		_, _ = w.Write(res.GetMp3())
	}
}

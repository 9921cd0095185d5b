package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/nexusrag/nexusrag/pkg/principal"
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
// the run through the request context, unless runs are resumable (streams set): then the
// run goes on, its events kept in Redis, and the SSE id is <stream id>.<seq>.
type sseStream struct {
	client    runv1.RunServiceClient
	heartbeat time.Duration
	// after is time.After; tests inject a clock they control.
	after func(time.Duration) <-chan time.Time
	now   func() time.Time
	// stats counts streams started, completed and errored, and those open (nil: none).
	stats *reqstats.Stats
	// streams keeps runs' events for resuming (RUN_STREAM_RESUME); nil: a reconnect gets
	// resume.unsupported.
	streams *RunStreams
	log     *slog.Logger
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
		if last := r.Header.Get("Last-Event-ID"); last != "" {
			if s.streams == nil {
				s.refuseResume(w, r, "runs cannot be resumed: send the request again without Last-Event-ID to start a new run")
				return
			}
			s.resume(w, r, last)
			return
		}
		req, err := decodeRun(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if s.streams != nil {
			s.startResumable(w, r, req)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel() // a client that goes away cancels the run
		stream, first, err := s.open(ctx, req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := s.start(w, r, seqID)
		ended := s.countStream(out)
		ended(s.pump(ctx, stream, first, out))
	}
}

// open starts the run and reads its first event, so that a refusal (validation, an
// unknown corpus, a too-low role) is still an ordinary JSON error.
func (s *sseStream) open(ctx context.Context, req *runv1.RunRequest) (runv1.RunService_RunClient, *runv1.RunResponse, error) {
	stream, err := s.client.Run(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	return stream, first, nil
}

// pump writes first and every later event of stream to out, with a heartbeat whenever
// the stream has been idle for the interval, until the stream ends (true: completed) or
// out fails or ctx ends (false).
func (s *sseStream) pump(ctx context.Context, stream runv1.RunService_RunClient, first *runv1.RunResponse, out *sseWriter) bool {
	ctx, cancel := context.WithCancel(ctx)
	var reader sync.WaitGroup
	defer reader.Wait() // after cancel below: the reader goroutine has ended when pump returns
	defer cancel()
	events := make(chan *runv1.RunResponse)
	failed := make(chan error, 1)
	reader.Go(func() { // ends when the stream ends or ctx is cancelled
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
	if out.runEvent(first) != nil {
		return false
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
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
				return true
			}
			if out.runEvent(ev) != nil {
				return false // the client went away; the caller's cancel stops the run
			}
		case <-s.after(s.heartbeat):
			if out.heartbeat(s.now()) != nil {
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
}

// startResumable starts a run whose events outlive the connection (RUN_STREAM_RESUME): a
// producer writes them to a Redis stream, detached from the request so that the run goes
// on while its client reconnects, and this connection follows the stream like any later
// one.
func (s *sseStream) startResumable(w http.ResponseWriter, r *http.Request, req *runv1.RunRequest) {
	runCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.streams.ttl)
	stream, first, err := s.open(runCtx, req)
	if err != nil {
		cancel()
		writeError(w, r, err)
		return
	}
	id, err := s.streams.create(r.Context(), streamOwner(r.Context()))
	if err != nil {
		cancel()
		writeError(w, r, apierr.New(codes.Unavailable, "RUN_STREAM_UNAVAILABLE", "the run's events cannot be kept for resuming now; retry"))
		return
	}
	sink := &sseWriter{requestID: stateOf(r.Context()).requestID}
	sink.emit = func(seq int64, event string, payload []byte) error {
		return s.streams.append(runCtx, id, streamEntry{seq: seq, event: event, payload: string(payload)})
	}
	go func() {
		defer cancel()
		ended := s.countStream(sink)
		completed := s.pump(runCtx, stream, first, sink)
		ended(completed)
		if !completed && s.log != nil {
			s.log.WarnContext(runCtx, "a resumable run stopped before its end: its followers end with STREAM_INTERRUPTED", "stream_id", id,
				"error", context.Cause(runCtx))
		}
	}()
	s.follow(w, r, id, 0)
}

// resume answers a reconnect (Last-Event-ID) with the events of its run after that id,
// then the rest live; a stream that does not exist, has expired or belongs to another key
// gets resume.unsupported.
func (s *sseStream) resume(w http.ResponseWriter, r *http.Request, last string) {
	id, seq, ok := parseResumeID(last)
	if ok {
		owner, err := s.streams.owner(r.Context(), id)
		if err != nil {
			writeError(w, r, apierr.New(codes.Unavailable, "RUN_STREAM_UNAVAILABLE", "the run's events cannot be read now; retry"))
			return
		}
		ok = owner != "" && owner == streamOwner(r.Context())
	}
	if !ok {
		s.refuseResume(w, r, "no run to resume for this key at that Last-Event-ID (streams are kept for RUN_STREAM_RESUME_TTL): "+
			"send the request again without Last-Event-ID to start a new run")
		return
	}
	s.follow(w, r, id, seq)
}

// follow writes the events of stream id after seq to the client, waiting for new ones,
// until done. A stream silent for three heartbeat intervals lost its producer: the client
// gets an error STREAM_INTERRUPTED, then done.
func (s *sseStream) follow(w http.ResponseWriter, r *http.Request, id string, after int64) {
	out := s.start(w, r, func(seq int64) string { return resumeID(id, seq) })
	var quiet time.Duration
	for quiet < 3*s.heartbeat {
		entries, err := s.streams.read(r.Context(), id, after, s.heartbeat)
		if r.Context().Err() != nil {
			return // the client went away; the run goes on for a reconnect
		}
		if err != nil {
			break
		}
		if len(entries) == 0 {
			quiet += s.heartbeat
			continue
		}
		quiet = 0
		for _, e := range entries {
			if out.emit(e.seq, e.event, []byte(e.payload)) != nil {
				return
			}
			after = e.seq
			if e.event == "done" {
				return
			}
		}
	}
	out.seq = after
	_ = out.event("error", map[string]any{"code": "STREAM_INTERRUPTED", "message": "the run's events stopped before its end; start the run again"})
	_ = out.event("done", map[string]any{})
}

// streamOwner is who may resume a stream: the tenant and API key that started it.
func streamOwner(ctx context.Context) string {
	p, _ := principal.From(ctx)
	return p.TenantID + "/" + p.KeyID
}

// refuseResume answers a reconnect that cannot be resumed: the client must start again.
func (s *sseStream) refuseResume(w http.ResponseWriter, r *http.Request, message string) {
	out := s.start(w, r, seqID)
	if out.event("resume.unsupported", map[string]any{
		"last_event_id": r.Header.Get("Last-Event-ID"),
		"message":       message,
	}) == nil {
		_ = out.event("done", map[string]any{})
	}
}

func decodeRun(r *http.Request) (*runv1.RunRequest, error) {
	req := &runv1.RunRequest{}
	return req, decodeJSON(r, req)
}

// sseWriter numbers events and hands each to emit: to the client (start), or to a run
// stream that clients follow.
type sseWriter struct {
	emit      func(seq int64, event string, payload []byte) error
	requestID string
	seq       int64
	errored   bool // an error event was written
}

// seqID is the SSE id of an event that cannot be resumed: its seq.
func seqID(seq int64) string { return strconv.FormatInt(seq, 10) }

// start answers 200 text/event-stream and returns a writer of events to the client, each
// flushed, with the SSE id id(seq).
func (s *sseStream) start(w http.ResponseWriter, r *http.Request, id func(seq int64) string) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	return &sseWriter{requestID: stateOf(r.Context()).requestID, emit: func(seq int64, event string, payload []byte) error {
		if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", id(seq), event, payload); err != nil {
			return err
		}
		return rc.Flush()
	}}
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
	return o.emit(o.seq, eventType, b)
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

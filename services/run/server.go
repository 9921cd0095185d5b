// Package run is the run service: the agent graph (load session, retrieve, generate,
// persist, speak) streamed as events, sessions and their messages, spoken answers.
package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/graph"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Deps are the run service's collaborators.
type Deps struct {
	Store     *Store
	Retrieval retrievalv1.RetrievalServiceClient
	Generator Generator
	Speaker   Speaker // nil: TTS_PROVIDER=none
	// LLMCalls and TTSCalls guard the external calls (timeout, retries, breaker); nil calls straight through.
	LLMCalls *extcall.Client
	TTSCalls *extcall.Client
	Audit    Recorder
	Log      *slog.Logger
}

// Server implements nexusrag.run.v1.RunService.
type Server struct {
	runv1.UnimplementedRunServiceServer
	agent *agent
	graph *graph.Runnable[State]
	deps  Deps
	runs  *bulkhead.Bulkhead
}

// NewServer builds the service and compiles its graph.
func NewServer(cfg Config, d Deps) (*Server, error) {
	a := &agent{store: d.Store, retrieval: d.Retrieval, generator: d.Generator, speaker: d.Speaker, llmCalls: d.LLMCalls, ttsCalls: d.TTSCalls,
		audio: AudioStore{Dir: cfg.AudioDir}, cfg: cfg, log: d.Log}
	g, err := a.compile()
	if err != nil {
		return nil, err
	}
	capacity := cfg.MaxConcurrency
	if capacity < 1 {
		capacity = 256
	}
	return &Server{agent: a, graph: g, deps: d, runs: bulkhead.New("the run service", capacity)}, nil
}

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// Run validates the request, then streams the run's events.
func (s *Server) Run(req *runv1.RunRequest, stream runv1.RunService_RunServer) error {
	ctx := stream.Context()
	p, err := principal.Require(ctx)
	if err != nil {
		return err
	}
	if err := s.validate(req); err != nil {
		return err
	}
	release, err := s.runs.Acquire()
	if err != nil {
		return err
	}
	defer release()
	// An unknown corpus is a request error, answered before the stream starts.
	if _, err := s.deps.Retrieval.GetCorpus(ctx, &retrievalv1.GetCorpusRequest{CorpusId: req.GetCorpusId()}); err != nil {
		return err
	}
	st := &State{RunID: uuid.Must(uuid.NewV7()), TenantID: p.TenantID, SessionID: req.GetSessionId(), CorpusID: req.GetCorpusId(),
		Message: req.GetMessage(), TopK: int(req.GetTopK()), Audio: req.GetAudio()}
	seq := int64(0)
	emit := emitter(func(eventType string, data map[string]any) error {
		seq++
		d, err := structpb.NewStruct(data)
		if err != nil {
			return fmt.Errorf("encode %s event: %w", eventType, err)
		}
		return stream.Send(&runv1.RunResponse{Type: eventType, Seq: seq, Data: d})
	})
	s.deps.Audit.Record(ctx, audit.Event{Type: audit.TypeRunInvoked, Outcome: audit.OutcomeSuccess, ResourceType: "session", ResourceID: st.SessionID,
		Metadata: map[string]any{"run_id": st.RunID.String(), "corpus_id": st.CorpusID, "top_k": st.TopK, "audio": st.Audio, "message_chars": utf8.RuneCountInString(st.Message)}})
	if err := emit("request.accepted", map[string]any{"run_id": st.RunID.String(), "session_id": st.SessionID, "corpus_id": st.CorpusID}); err != nil {
		return err
	}
	err = s.graph.Run(context.WithValue(ctx, emitterKey{}, emit), st, checkpointer{s.agent.store})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the client went away: nothing more to say
		}
		s.deps.Log.ErrorContext(ctx, "run failed", "run_id", st.RunID, "error", err)
		code, msg := apierr.CodeInternal, "the run failed; retry shortly"
		if e, ok := apierr.From(err); ok && e.Code != apierr.CodeInternal {
			code, msg = e.Code, e.Message
		}
		if err := emit("error", map[string]any{"code": code, "message": msg}); err != nil {
			return err
		}
	}
	return emit("done", map[string]any{})
}

func (s *Server) validate(req *runv1.RunRequest) error {
	max := s.agent.cfg.MaxMessageChars
	switch n := utf8.RuneCountInString(req.GetMessage()); {
	case !sessionIDPattern.MatchString(req.GetSessionId()):
		return apierr.InvalidArgument("session_id", "session_id is required: 1 to 128 letters, digits, _ . : - (starting with a letter or digit)")
	case req.GetCorpusId() == "":
		return apierr.InvalidArgument("corpus_id", "corpus_id is required")
	case strings.TrimSpace(req.GetMessage()) == "":
		return apierr.InvalidArgument("message", "message is required")
	case n > max:
		return apierr.New(codes.InvalidArgument, "MESSAGE_TOO_LONG", fmt.Sprintf("message has %d characters; the limit is %d", n, max),
			"field", "message", "limit", fmt.Sprint(max))
	case req.GetTopK() != 0 && (req.GetTopK() < 1 || req.GetTopK() > 50):
		return apierr.InvalidArgument("top_k", "top_k must be 1 to 50")
	}
	return nil
}

// GetAudio returns a spoken answer by id.
func (s *Server) GetAudio(ctx context.Context, req *runv1.GetAudioRequest) (*runv1.GetAudioResponse, error) {
	notFound := apierr.NotFound("audio", req.GetAudioId())
	if !audioIDPattern.MatchString(req.GetAudioId()) {
		return nil, notFound
	}
	if err := s.agent.store.AudioExists(ctx, req.GetAudioId()); err != nil {
		if errors.Is(err, errAudioNotFound) {
			return nil, notFound
		}
		return nil, err
	}
	b, err := s.agent.audio.Load(req.GetAudioId())
	if errors.Is(err, os.ErrNotExist) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	return &runv1.GetAudioResponse{Mp3: b}, nil
}

// checkpointer saves the run's state after each node.
type checkpointer struct{ store *Store }

func (c checkpointer) Checkpoint(ctx context.Context, step int, node string, s *State) error {
	return c.store.SaveCheckpoint(ctx, s.RunID, step, s.TenantID, s.SessionID, node, s)
}

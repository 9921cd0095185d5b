package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/graph"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.run.v1.RunService.
type Server struct {
	runv1.UnimplementedRunServiceServer
	agent        *agent
	graph        *graph.Runnable[turn]
	entitlements entitlements.Checker
	rollouts     rollouts.Checker
	audit        Recorder
	log          *slog.Logger
	runs         *bulkhead.Bulkhead
}

// NewServer builds the service and compiles its graph. speaker is nil when answers are
// not spoken (TTS_PROVIDER=none); a run with audio needs feature.tts in the tenant's plan.
func NewServer(cfg Config, store *Store, retrieval retrievalv1.RetrievalServiceClient, gen Generator, speaker Speaker,
	ent entitlements.Checker, rec Recorder, log *slog.Logger) (*Server, error) {
	a := &agent{store: store, retrieval: retrieval, generator: gen, speaker: speaker, audio: AudioStore{Dir: cfg.AudioDir}, cfg: cfg, log: log}
	g, err := a.compile()
	if err != nil {
		return nil, err
	}
	capacity := cfg.MaxConcurrency
	if capacity < 1 {
		capacity = 256
	}
	return &Server{agent: a, graph: g, entitlements: ent, audit: rec, log: log, runs: bulkhead.New("the run service", capacity), rollouts: rollouts.None}, nil
}

var sessionIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`)

// Run validates the request, then streams the run's events.
func (s *Server) Run(req *runv1.RunRequest, stream runv1.RunService_RunServer) error {
	ctx := stream.Context()
	p, err := principal.Require(ctx)
	if err != nil {
		return err
	}
	if err := s.rollouts.Check(rollouts.KillRun); err != nil {
		return err
	}
	if err := s.validate(req); err != nil {
		return err
	}
	if !p.AllowsCorpus(req.GetCorpusId()) { // before any event: a plain 403 at the edge
		return principal.CorpusForbidden(req.GetCorpusId())
	}
	if req.GetAudio() {
		if err := s.entitlements.Require(ctx, p.TenantID, entitlements.TTS); err != nil {
			return err
		}
		if err := s.rollouts.Check(rollouts.KillTTS); err != nil {
			return err
		}
		if err := s.rollouts.Rolled(rollouts.RolloutTTS, p.TenantID); err != nil {
			return err
		}
	}
	release, err := s.runs.Acquire()
	if err != nil {
		return err
	}
	defer release()
	// An unknown corpus, or one whose provider the plan lacks, is a request error,
	// answered before the stream starts (retrieval checks the plan again on each search).
	corpus, err := s.agent.retrieval.GetCorpus(ctx, &retrievalv1.GetCorpusRequest{CorpusId: req.GetCorpusId()})
	if err != nil {
		return err
	}
	if err := s.entitlements.Require(ctx, p.TenantID, entitlements.ForProvider(corpus.GetCorpus().GetProvider())); err != nil {
		return err
	}
	if err := s.rollouts.Check(rollouts.KillRetrieval(corpus.GetCorpus().GetProvider())); err != nil {
		return err
	}
	t := &turn{State: State{RunID: uuid.Must(uuid.NewV7()), TenantID: p.TenantID, SessionID: req.GetSessionId(), CorpusID: req.GetCorpusId(),
		Message: req.GetMessage(), TopK: int(req.GetTopK()), Audio: req.GetAudio()}, emit: stream.Send}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeRunInvoked, Outcome: audit.OutcomeSuccess, ResourceType: "session", ResourceID: t.SessionID,
		Metadata: map[string]any{"run_id": t.RunID.String(), "corpus_id": t.CorpusID, "top_k": t.TopK, "audio": t.Audio, "message_chars": utf8.RuneCountInString(t.Message)}})
	if err := t.emit(acceptedEvent(&t.State)); err != nil {
		return err
	}
	err = s.graph.Run(ctx, t, checkpointer{s.agent.store})
	switch {
	case ctx.Err() != nil:
		s.cancelled(ctx, t)
		return ctx.Err() // the client went away: nothing more to say
	case err != nil:
		s.log.ErrorContext(ctx, "run failed", "run_id", t.RunID, "error", err)
		code, msg := apierr.CodeInternal, "the run failed; retry shortly"
		// A lost database or cache is the platform's temporary state, not a bug: say so.
		if e, ok := apierr.From(grpcx.Normalize(ctx, err)); ok && e.Code != apierr.CodeInternal {
			code, msg = e.Code, e.Message
		}
		s.endTurn(ctx, t, TurnFailed)
		if err := t.emit(failureEvent(code, msg)); err != nil {
			return err
		}
	case t.Failure != nil:
		s.endTurn(ctx, t, TurnFailed)
	}
	return t.emit(doneEvent())
}

// cancelled records a run whose client went away: the turn is kept as cancelled (with
// the part of the answer already streamed), so the session never holds a question
// without an answer, and later runs leave it out of their history.
func (s *Server) cancelled(ctx context.Context, t *turn) {
	if t.Persisted {
		return // the answer was saved: only the speech was cut short
	}
	s.log.InfoContext(ctx, "run cancelled: the client went away", "run_id", t.RunID, "session_id", t.SessionID, "answer_chars", utf8.RuneCountInString(t.Answer))
	s.endTurn(ctx, t, TurnCancelled)
}

// endTurn closes an unanswered turn, on a context of its own: ctx may be over.
func (s *Server) endTurn(ctx context.Context, t *turn, status string) {
	if t.Persisted {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.agent.store.EndTurn(sctx, t.TenantID, t.SessionID, t.RunID, status, t.Answer); err != nil {
		s.log.WarnContext(ctx, "could not record the end of a run", "run_id", t.RunID, "status", status, "error", err)
	}
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

func (c checkpointer) Checkpoint(ctx context.Context, step int, node string, t *turn) error {
	return c.store.SaveCheckpoint(ctx, t.RunID, step, t.TenantID, t.SessionID, node, &t.State)
}

// WithRollouts makes the server follow the kill switches (kill.run, kill.tts, the
// retrieval providers') and the TTS canary.
func (s *Server) WithRollouts(c rollouts.Checker) *Server {
	s.rollouts = c
	return s
}

// Bulkhead is the bulkhead of concurrent runs (RUN_MAX_CONCURRENCY).
func (s *Server) Bulkhead() *bulkhead.Bulkhead { return s.runs }

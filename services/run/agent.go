package run

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/graph"
)

// State is what the run graph works on; it is checkpointed (as JSON) after every node.
type State struct {
	RunID     uuid.UUID `json:"run_id"`
	TenantID  string    `json:"tenant_id"`
	SessionID string    `json:"session_id"`
	CorpusID  string    `json:"corpus_id"`
	Message   string    `json:"message"`
	TopK      int       `json:"top_k"`
	Audio     bool      `json:"audio"`

	History   []Turn     `json:"history"`
	Provider  string     `json:"provider,omitempty"`
	Passages  []Passage  `json:"passages"`
	Answer    string     `json:"answer,omitempty"`
	Citations []Citation `json:"citations"`
	AudioID   string     `json:"audio_id,omitempty"`
	// Failure is the provider error that ended the run early (code and message), if any.
	Failure *Failure `json:"failure,omitempty"`
}

// Failure is an error event's payload.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// emitter sends one event of the run's stream.
type emitter func(eventType string, data map[string]any) error

// agent holds what the nodes need; one per process, shared by every run.
type agent struct {
	store     *Store
	retrieval retrievalv1.RetrievalServiceClient
	generator Generator
	speaker   Speaker // nil when TTS_PROVIDER=none
	llmCalls  *extcall.Client
	ttsCalls  *extcall.Client
	audio     AudioStore
	cfg       Config
	log       *slog.Logger
}

// Node names of the run graph.
const (
	nodeLoadSession = "load_session"
	nodeRetrieve    = "retrieve"
	nodeGenerate    = "generate"
	nodePersist     = "persist"
	nodeTTS         = "tts"
)

// compile declares the run graph: load session -> retrieve -> generate -> persist ->
// (tts) -> end; a provider failure in retrieve or generate ends the run early. The
// emitter is reached through ctx, so one compiled graph serves every run.
func (a *agent) compile() (*graph.Runnable[State], error) {
	failed := func(next string) graph.Route[State] {
		return func(s *State) string {
			if s.Failure != nil {
				return graph.End
			}
			return next
		}
	}
	return graph.New[State]().
		AddNode(nodeLoadSession, a.loadSession).
		AddNode(nodeRetrieve, a.retrieve).
		AddNode(nodeGenerate, a.generate).
		AddNode(nodePersist, a.persist).
		AddNode(nodeTTS, a.speak).
		SetEntry(nodeLoadSession).
		AddEdge(nodeLoadSession, nodeRetrieve).
		AddConditionalEdge(nodeRetrieve, failed(nodeGenerate), nodeGenerate, graph.End).
		AddConditionalEdge(nodeGenerate, failed(nodePersist), nodePersist, graph.End).
		AddConditionalEdge(nodePersist, func(s *State) string {
			if s.Audio && a.speaker != nil {
				return nodeTTS
			}
			return graph.End
		}, nodeTTS, graph.End).
		AddEdge(nodeTTS, graph.End).
		Compile()
}

type emitterKey struct{}

func emitterOf(ctx context.Context) emitter {
	if e, ok := ctx.Value(emitterKey{}).(emitter); ok {
		return e
	}
	return func(string, map[string]any) error { return nil }
}

// loadSession reads the earlier turns (within the history budget) and saves the user's
// turn before anything can fail downstream.
func (a *agent) loadSession(ctx context.Context, s *State) error {
	history, err := a.store.History(ctx, s.TenantID, s.SessionID, a.cfg.HistoryChars)
	if err != nil {
		return err
	}
	s.History = history
	return a.store.AppendMessage(ctx, s.TenantID, s.SessionID, s.RunID, Turn{Role: "user", Content: s.Message}, nil)
}

func (a *agent) retrieve(ctx context.Context, s *State) error {
	res, err := a.retrieval.Retrieve(ctx, &retrievalv1.RetrieveRequest{CorpusId: s.CorpusID, Query: s.Message, TopK: int32(s.TopK)})
	if err != nil {
		return providerFailure(ctx, s, err)
	}
	s.Provider = res.GetProvider()
	s.Passages = make([]Passage, len(res.GetChunks()))
	for i, c := range res.GetChunks() {
		s.Passages[i] = Passage{DocumentID: c.GetDocumentId(), ChunkID: c.GetChunkId(), Score: c.GetScore(), Text: c.GetText()}
	}
	if a.cfg.DebugEvents {
		chunks := make([]any, len(s.Passages))
		for i, p := range s.Passages {
			chunks[i] = map[string]any{"document_id": p.DocumentID, "chunk_id": p.ChunkID, "score": p.Score, "text": p.Text}
		}
		return emitterOf(ctx)("debug.retrieval", map[string]any{"provider": s.Provider, "chunks": chunks})
	}
	return nil
}

func (a *agent) generate(ctx context.Context, s *State) error {
	emit := emitterOf(ctx)
	var answer string
	// Generation may be retried until its first token has gone to the client, not after.
	err := a.llmCalls.Do(ctx, true, func(ctx context.Context) error {
		streamed := false
		var err error
		answer, err = a.generator.Generate(ctx, Prompt{Question: s.Message, History: s.History, Passages: s.Passages},
			func(d string) error { streamed = true; return emit("token.delta", map[string]any{"text": d}) })
		if err != nil && streamed {
			return extcall.Permanent(err)
		}
		return err
	})
	if err != nil {
		return providerFailure(ctx, s, err)
	}
	s.Answer = answer
	s.Citations = citations(answer, s.Passages)
	return nil
}

func (a *agent) persist(ctx context.Context, s *State) error {
	if err := a.store.AppendMessage(ctx, s.TenantID, s.SessionID, s.RunID, Turn{Role: "assistant", Content: s.Answer}, s.Citations); err != nil {
		return err
	}
	cites := make([]any, len(s.Citations))
	for i, c := range s.Citations {
		cites[i] = map[string]any{"marker": c.Marker, "document_id": c.DocumentID, "chunk_id": c.ChunkID, "score": c.Score}
	}
	return emitterOf(ctx)("message.final", map[string]any{"text": s.Answer, "citations": cites, "session_id": s.SessionID, "provider": s.Provider})
}

// speak never fails the run: a TTS failure is an audio.error event.
func (a *agent) speak(ctx context.Context, s *State) error {
	emit := emitterOf(ctx)
	tctx, cancel := context.WithTimeout(ctx, a.cfg.TTSTimeout)
	defer cancel()
	var audio []byte
	err := a.ttsCalls.Do(tctx, true, func(ctx context.Context) (err error) {
		audio, err = a.speaker.Speak(ctx, s.Answer)
		return err
	})
	if err == nil {
		s.AudioID, err = a.audio.Save(audio)
	}
	if err == nil {
		err = a.store.SaveAudio(ctx, s.AudioID, s.TenantID, s.RunID, len(audio))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.WarnContext(ctx, "speech synthesis failed", "run_id", s.RunID, "error", err)
		return emit("audio.error", map[string]any{"code": CodeTTSError, "message": "the answer could not be spoken: " + err.Error()})
	}
	return emit("audio.ready", map[string]any{"audio_id": s.AudioID, "audio_url": a.cfg.AudioURL(s.AudioID), "mime": "audio/mpeg"})
}

// providerFailure records a retrieval or generation failure as the run's error event;
// the run then ends. Cancellation is not a provider failure: it ends the run as it is.
func providerFailure(ctx context.Context, s *State, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e, ok := apierr.From(err)
	if !ok || e.Code == "" || e.Code == apierr.CodeInternal {
		return err // not a provider's answer: an internal error
	}
	s.Failure = &Failure{Code: e.Code, Message: e.Message}
	return emitterOf(ctx)("error", map[string]any{"code": e.Code, "message": e.Message})
}

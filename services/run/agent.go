package run

import (
	"context"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"github.com/google/uuid"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/graph"
	"github.com/nexusrag/nexusrag/services/run/generators"
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

	History  []generators.Turn    `json:"history"`
	Provider string               `json:"provider,omitempty"`
	Passages []generators.Passage `json:"passages"`
	// Answer grows as it streams: a run cut short keeps what was said.
	Answer    string     `json:"answer,omitempty"`
	Citations []Citation `json:"citations"`
	AudioID   string     `json:"audio_id,omitempty"`
	// Failure is the provider error that ended the run early (code and message), if any.
	Failure *Failure `json:"failure,omitempty"`
	// Persisted is set once the answer is saved: the turn is complete, whatever follows.
	Persisted bool `json:"persisted,omitempty"`
}

// Failure is an error event's payload.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Citation is a passage an answer cites, in the stable shape of message.final.
type Citation struct {
	Marker     int     `json:"marker"`
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
	Section    string  `json:"section,omitempty"`
	Page       int     `json:"page,omitempty"`
}

// turn is one run in flight: the state the graph checkpoints, and where its events go.
type turn struct {
	State
	emit emitter
}

// agent holds what the nodes need; one per process, shared by every run.
type agent struct {
	store     *Store
	retrieval retrievalv1.RetrievalServiceClient
	generator Generator
	speaker   Speaker // nil when TTS_PROVIDER=none
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
// (tts) -> end; a provider failure in retrieve or generate ends the run early. Each run
// brings its own emitter in its turn, so one compiled graph serves every run.
func (a *agent) compile() (*graph.Runnable[turn], error) {
	failed := func(next string) graph.Route[turn] {
		return func(t *turn) string {
			if t.Failure != nil {
				return graph.End
			}
			return next
		}
	}
	return graph.New[turn]().
		AddNode(nodeLoadSession, a.loadSession).
		AddNode(nodeRetrieve, a.retrieve).
		AddNode(nodeGenerate, a.generate).
		AddNode(nodePersist, a.persist).
		AddNode(nodeTTS, a.speak).
		SetEntry(nodeLoadSession).
		AddEdge(nodeLoadSession, nodeRetrieve).
		AddConditionalEdge(nodeRetrieve, failed(nodeGenerate), nodeGenerate, graph.End).
		AddConditionalEdge(nodeGenerate, failed(nodePersist), nodePersist, graph.End).
		AddConditionalEdge(nodePersist, func(t *turn) string {
			if t.Audio && a.speaker != nil {
				return nodeTTS
			}
			return graph.End
		}, nodeTTS, graph.End).
		AddEdge(nodeTTS, graph.End).
		Compile()
}

// loadSession reads the earlier turns (within the history budget) and saves the user's
// turn before anything can fail downstream.
func (a *agent) loadSession(ctx context.Context, t *turn) error {
	history, err := a.store.History(ctx, t.TenantID, t.SessionID, a.cfg.HistoryChars)
	if err != nil {
		return err
	}
	t.History = history
	return a.store.AppendMessage(ctx, t.TenantID, t.SessionID, t.RunID, generators.Turn{Role: "user", Content: t.Message}, nil)
}

func (a *agent) retrieve(ctx context.Context, t *turn) error {
	res, err := a.retrieval.Retrieve(ctx, &retrievalv1.RetrieveRequest{CorpusId: t.CorpusID, Query: t.Message, TopK: int32(t.TopK)})
	if err != nil {
		return providerFailure(ctx, t, err)
	}
	t.Provider = res.GetProvider()
	t.Passages = make([]generators.Passage, len(res.GetChunks()))
	for i, c := range res.GetChunks() {
		md := c.GetMetadata().GetFields()
		t.Passages[i] = generators.Passage{DocumentID: c.GetDocumentId(), ChunkID: c.GetChunkId(), Score: c.GetScore(), Text: c.GetText(),
			Section: md["section"].GetStringValue(), Page: int(md["page"].GetNumberValue())}
	}
	if a.cfg.DebugEvents {
		return t.emit(debugRetrievalEvent(t.Provider, t.Passages, res.GetRanking()))
	}
	return nil
}

func (a *agent) generate(ctx context.Context, t *turn) error {
	answer, err := a.generator.Generate(ctx, generators.Prompt{Question: t.Message, History: t.History, Passages: t.Passages},
		func(d string) error {
			t.Answer += d
			return t.emit(tokenDeltaEvent(d))
		})
	if err != nil {
		return providerFailure(ctx, t, err)
	}
	t.Answer = answer
	t.Citations = citations(answer, t.Passages)
	return nil
}

func (a *agent) persist(ctx context.Context, t *turn) error {
	if err := a.store.AppendMessage(ctx, t.TenantID, t.SessionID, t.RunID, generators.Turn{Role: "assistant", Content: t.Answer}, t.Citations); err != nil {
		return err
	}
	t.Persisted = true
	return t.emit(finalEvent(&t.State))
}

// speak never fails the run: a TTS failure is an audio.error event.
func (a *agent) speak(ctx context.Context, t *turn) error {
	tctx, cancel := context.WithTimeout(ctx, a.cfg.TTSTimeout)
	defer cancel()
	audio, err := a.speaker.Speak(tctx, t.Answer)
	if err == nil {
		t.AudioID, err = a.audio.Save(audio)
	}
	if err == nil {
		err = a.store.SaveAudio(ctx, t.AudioID, t.TenantID, t.RunID, len(audio))
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.WarnContext(ctx, "speech synthesis failed", "run_id", t.RunID, "error", err)
		return t.emit(audioErrorEvent(CodeTTSError, "the answer could not be spoken: "+err.Error()))
	}
	return t.emit(audioReadyEvent(t.AudioID, a.cfg.AudioURL(t.AudioID)))
}

// CodeTTSError is the code of every speech failure (audio.error).
const CodeTTSError = "TTS_ERROR"

// providerFailure records a retrieval or generation failure as the run's error event;
// the run then ends. Cancellation is not a provider failure: it ends the run as it is.
func providerFailure(ctx context.Context, t *turn, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e, ok := apierr.From(err)
	if !ok || e.Code == "" || e.Code == apierr.CodeInternal {
		return err // not a provider's answer: an internal error
	}
	t.Failure = &Failure{Code: e.Code, Message: e.Message}
	return t.emit(failureEvent(e.Code, e.Message))
}

var marker = regexp.MustCompile(`\[(\d{1,2})\]`)

// citations lists the passages an answer's markers name, in marker order, each once.
func citations(answer string, passages []generators.Passage) []Citation {
	var out []Citation
	var seen []int
	for _, m := range marker.FindAllStringSubmatch(answer, -1) {
		n, _ := strconv.Atoi(m[1])
		if n < 1 || n > len(passages) || slices.Contains(seen, n) {
			continue
		}
		seen = append(seen, n)
		p := passages[n-1]
		out = append(out, Citation{Marker: n, DocumentID: p.DocumentID, ChunkID: p.ChunkID, Score: p.Score, Section: p.Section, Page: p.Page})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Marker < out[b].Marker })
	return out
}

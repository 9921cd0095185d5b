package run

import (
	"context"
	"log/slog"

	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/services/run/generators"
	"github.com/nexusrag/nexusrag/services/run/speech"
)

// Generator writes an answer, calling delta with each piece as it is produced.
type Generator interface {
	Generate(ctx context.Context, p generators.Prompt, delta func(string) error) (string, error)
}

// Speaker turns an answer into MP3 audio.
type Speaker interface {
	Speak(ctx context.Context, text string) ([]byte, error)
}

// NewGenerator is the generator LLM_PROVIDER names (extractive, offline; or vertex,
// Gemini), its calls under calls' policy (timeout, retries before the first token,
// circuit breaker; nil: none). A Vertex generator that cannot run is logged here and
// answers VERTEX_CONFIG_MISSING on every run.
func NewGenerator(ctx context.Context, cfg Config, calls *extcall.Client, log *slog.Logger) Generator {
	var gen Generator = generators.Extractive{}
	if cfg.LLMProvider == "vertex" {
		v := generators.NewVertex(ctx, generators.VertexConfig{Project: cfg.GoogleProject, Location: cfg.GoogleLocation, Model: cfg.GeminiModel})
		if err := v.Err(); err != nil {
			log.WarnContext(ctx, "LLM_PROVIDER=vertex cannot generate; every run will answer with this error", "error", err)
		}
		gen = v
	}
	return guardedGenerator{gen: gen, calls: calls}
}

// NewSpeaker is the speech backend TTS_PROVIDER names (fake or openai), its calls under
// calls' policy; nil for none.
func NewSpeaker(cfg Config, calls *extcall.Client) Speaker {
	switch cfg.TTSProvider {
	case "fake":
		return guardedSpeaker{speaker: speech.Fake{}, calls: calls}
	case "openai":
		return guardedSpeaker{speaker: speech.OpenAI{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey, Model: cfg.OpenAITTSModel, Voice: cfg.OpenAITTSVoice}, calls: calls}
	}
	return nil
}

// guardedGenerator applies the external-call policy to a generator. A generation may
// be retried until its first piece has gone to the client, not after.
type guardedGenerator struct {
	gen   Generator
	calls *extcall.Client
}

func (g guardedGenerator) Generate(ctx context.Context, p generators.Prompt, delta func(string) error) (string, error) {
	var answer string
	err := g.calls.Do(ctx, true, func(ctx context.Context) error {
		streamed := false
		var err error
		answer, err = g.gen.Generate(ctx, p, func(d string) error { streamed = true; return delta(d) })
		if err != nil && streamed {
			return extcall.Permanent(err)
		}
		return err
	})
	return answer, err
}

// guardedSpeaker applies the external-call policy to a speech backend.
type guardedSpeaker struct {
	speaker Speaker
	calls   *extcall.Client
}

func (g guardedSpeaker) Speak(ctx context.Context, text string) ([]byte, error) {
	var audio []byte
	err := g.calls.Do(ctx, true, func(ctx context.Context) (err error) {
		audio, err = g.speaker.Speak(ctx, text)
		return err
	})
	return audio, err
}

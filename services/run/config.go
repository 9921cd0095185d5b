package run

import (
	"fmt"
	"strings"
	"time"
)

// Config is the run service's configuration, parsed from the environment.
type Config struct {
	// LLMProvider is extractive (offline: an answer composed from the retrieved sentences) or vertex (Gemini).
	LLMProvider    string `env:"LLM_PROVIDER" envDefault:"extractive"`
	GoogleProject  string `env:"GOOGLE_CLOUD_PROJECT"`
	GoogleLocation string `env:"GOOGLE_CLOUD_LOCATION" envDefault:"us-central1"`
	GeminiModel    string `env:"GEMINI_MODEL" envDefault:"gemini-2.5-flash"`
	// TTSProvider is none, fake (a real, silent MP3) or openai.
	TTSProvider    string `env:"TTS_PROVIDER" envDefault:"none"`
	OpenAIAPIKey   string `env:"OPENAI_API_KEY"`
	OpenAITTSModel string `env:"OPENAI_TTS_MODEL" envDefault:"gpt-4o-mini-tts"`
	OpenAITTSVoice string `env:"OPENAI_TTS_VOICE" envDefault:"alloy"`
	// OpenAIBaseURL is the OpenAI API's address (tests point it at a local fake).
	OpenAIBaseURL string `env:"OPENAI_BASE_URL" envDefault:"https://api.openai.com/v1"`
	// AudioDir holds the spoken answers; AudioBaseURL is where clients reach the gateway,
	// with or without /v1 (empty: audio_url is a path on the gateway).
	AudioDir     string `env:"AUDIO_DIR" envDefault:"var/audio"`
	AudioBaseURL string `env:"AUDIO_BASE_URL"`
	// DebugEvents adds a debug.retrieval event (chunks, scores, provider) after retrieval.
	DebugEvents bool `env:"DEBUG_EVENTS" envDefault:"false"`
	// MaxMessageChars bounds a user message; HistoryChars bounds the earlier turns given to the model.
	MaxMessageChars int `env:"RUN_MAX_MESSAGE_CHARS" envDefault:"4000"`
	HistoryChars    int `env:"RUN_HISTORY_CHARS" envDefault:"6000"`
	// MaxConcurrency bounds the runs in flight in this process; more answer 503 SERVICE_BUSY at once.
	MaxConcurrency int `env:"RUN_MAX_CONCURRENCY" envDefault:"256"`
	// TTSTimeout bounds one speech synthesis.
	TTSTimeout time.Duration `env:"TTS_TIMEOUT" envDefault:"30s"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch c.LLMProvider {
	case "extractive", "vertex":
	default:
		return fmt.Errorf("LLM_PROVIDER: %q is not extractive or vertex", c.LLMProvider)
	}
	switch c.TTSProvider {
	case "none", "fake", "openai":
	default:
		return fmt.Errorf("TTS_PROVIDER: %q is not none, fake or openai", c.TTSProvider)
	}
	switch {
	case c.MaxMessageChars < 1 || c.MaxMessageChars > 100_000:
		return fmt.Errorf("RUN_MAX_MESSAGE_CHARS: %d is outside 1..100000", c.MaxMessageChars)
	case c.HistoryChars < 0:
		return fmt.Errorf("RUN_HISTORY_CHARS: must not be negative")
	case c.MaxConcurrency < 1:
		return fmt.Errorf("RUN_MAX_CONCURRENCY: must be at least 1")
	case c.TTSTimeout <= 0:
		return fmt.Errorf("TTS_TIMEOUT: must be positive")
	}
	return nil
}

// AudioURL is the audio_url of a spoken answer: the gateway's GET /v1/audio/{id}.mp3
// under AUDIO_BASE_URL, which may name the gateway ("http://host:8000") or its API root
// ("http://host:8000/v1/"), with or without a trailing slash.
func (c *Config) AudioURL(audioID string) string {
	base := strings.TrimSuffix(strings.TrimRight(c.AudioBaseURL, "/"), "/v1")
	return base + "/v1/audio/" + audioID + ".mp3"
}

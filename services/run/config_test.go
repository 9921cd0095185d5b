package run_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/run"
)

func TestAudioURL(t *testing.T) {
	for base, want := range map[string]string{
		"":                               "/v1/audio/a1.mp3",
		"http://host:8000":               "http://host:8000/v1/audio/a1.mp3",
		"http://host:8000/":              "http://host:8000/v1/audio/a1.mp3",
		"http://host:8000/v1":            "http://host:8000/v1/audio/a1.mp3",
		"http://host:8000/v1/":           "http://host:8000/v1/audio/a1.mp3",
		"https://api.example.com/rag/v1": "https://api.example.com/rag/v1/audio/a1.mp3",
		"https://api.example.com/rag":    "https://api.example.com/rag/v1/audio/a1.mp3",
	} {
		cfg := run.Config{AudioBaseURL: base}
		require.Equal(t, want, cfg.AudioURL("a1"), base)
	}
}

package speech_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/run/speech"
)

func TestOpenAIAgainstAFake(t *testing.T) {
	mp3 := append([]byte("ID3"), make([]byte, 64)...)
	var got map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/v1/audio/speech", r.URL.Path)
		if r.Header.Get("Authorization") != "Bearer sk-test-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"message":"Incorrect API key provided: sk-wrong","type":"invalid_request_error"}}`))
			return
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(mp3)
	}))
	t.Cleanup(srv.Close)

	tts := speech.OpenAI{BaseURL: srv.URL + "/v1", APIKey: "sk-test-secret", Model: "gpt-4o-mini-tts", Voice: "alloy"}
	audio, err := tts.Speak(context.Background(), "Hello there.")
	require.NoError(t, err)
	require.Equal(t, mp3, audio)
	require.Equal(t, map[string]string{"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "Hello there.", "response_format": "mp3"}, got)

	tts.APIKey = "sk-wrong"
	_, err = tts.Speak(context.Background(), "Hello there.")
	require.ErrorContains(t, err, "401")
	require.NotContains(t, err.Error(), "sk-wrong", "the key never appears in errors")

	tts.APIKey = ""
	_, err = tts.Speak(context.Background(), "Hello there.")
	require.ErrorContains(t, err, "OPENAI_API_KEY")
}

func TestFakeIsAPlayableMP3(t *testing.T) {
	audio, err := speech.Fake{}.Speak(context.Background(), "Fifteen letters.")
	require.NoError(t, err)
	const frame = 417
	require.Zero(t, len(audio)%frame, "whole frames")
	require.GreaterOrEqual(t, len(audio)/frame, 38, "at least a second")
	for i := 0; i < len(audio); i += frame {
		// Every frame: sync, MPEG-1 Layer III without CRC, 128 kbit/s, 44.1 kHz, mono.
		require.Equal(t, []byte{0xFF, 0xFB, 0x90, 0xC4}, audio[i:i+4])
	}
}

// Package speech holds the run service's interchangeable text-to-speech backends:
// OpenAI's speech endpoint, and a fake that makes real, silent MP3s. run.NewSpeaker
// chooses one from TTS_PROVIDER (none: answers are not spoken).
package speech

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// OpenAI speaks through OpenAI's speech endpoint (POST {base}/audio/speech).
type OpenAI struct {
	BaseURL, APIKey, Model, Voice string
	Client                        *http.Client
}

// Speak requests an MP3 of text.
func (o OpenAI) Speak(ctx context.Context, text string) ([]byte, error) {
	if o.APIKey == "" {
		return nil, status.Error(codes.FailedPrecondition, "OPENAI_API_KEY is not set")
	}
	body, _ := json.Marshal(map[string]string{"model": o.Model, "voice": o.Voice, "input": text, "response_format": "mp3"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.BaseURL, "/")+"/audio/speech", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+o.APIKey)
	req.Header.Set("Content-Type", "application/json")
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, status.Errorf(codes.Unavailable, "OpenAI speech could not be reached")
	}
	defer res.Body.Close()
	audio, err := io.ReadAll(io.LimitReader(res.Body, 50<<20))
	if err != nil {
		return nil, fmt.Errorf("OpenAI speech: read: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		_ = json.Unmarshal(audio, &e)
		// The message may echo the request; keep only the type, never the key. Only 429
		// and 5xx are the service's own failures (retried, counted by the breaker).
		c := codes.InvalidArgument
		switch {
		case res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500:
			c = codes.Unavailable
		case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
			c = codes.FailedPrecondition
		}
		return nil, status.Errorf(c, "OpenAI speech answered %d %s", res.StatusCode, e.Error.Type)
	}
	if !isMP3(audio) {
		return nil, fmt.Errorf("OpenAI speech returned something other than MP3 (%d bytes)", len(audio))
	}
	return audio, nil
}

// Fake makes a real, playable MP3 of silence, about as long as reading the text
// aloud would take: MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono) whose side
// information is all zero decode to silence in every player.
type Fake struct{}

const (
	frameBytes     = 417 // 144 * 128000 / 44100, no padding
	framesPerSec   = 38  // 44100 / 1152
	charsPerSecond = 15
)

// Speak returns the MP3.
func (Fake) Speak(ctx context.Context, text string) ([]byte, error) {
	seconds := 1 + len([]rune(text))/charsPerSecond
	frames := seconds * framesPerSec
	out := make([]byte, 0, frames*frameBytes)
	frame := make([]byte, frameBytes)
	copy(frame, []byte{0xFF, 0xFB, 0x90, 0xC4}) // sync, MPEG-1, Layer III, no CRC; 128 kbit/s, 44.1 kHz; mono
	for range frames {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = append(out, frame...)
	}
	return out, nil
}

// isMP3 recognizes an ID3 tag or an MPEG audio frame sync.
func isMP3(b []byte) bool {
	return len(b) > 3 && (string(b[:3]) == "ID3" || (b[0] == 0xFF && b[1]&0xE0 == 0xE0))
}

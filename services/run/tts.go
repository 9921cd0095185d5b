package run

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CodeTTSError is the code of every speech failure (audio.error).
const CodeTTSError = "TTS_ERROR"

// Speaker turns an answer into MP3 audio.
type Speaker interface {
	Speak(ctx context.Context, text string) ([]byte, error)
}

// OpenAITTS speaks through OpenAI's speech endpoint (POST {base}/audio/speech).
type OpenAITTS struct {
	BaseURL, APIKey, Model, Voice string
	Client                        *http.Client
}

// Speak requests an MP3 of text.
func (o OpenAITTS) Speak(ctx context.Context, text string) ([]byte, error) {
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

// FakeTTS makes a real, playable MP3 of silence, about as long as reading the text
// aloud would take: MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono) whose side
// information is all zero decode to silence in every player.
type FakeTTS struct{}

const (
	frameBytes     = 417 // 144 * 128000 / 44100, no padding
	framesPerSec   = 38  // 44100 / 1152
	charsPerSecond = 15
)

// Speak returns the MP3.
func (FakeTTS) Speak(ctx context.Context, text string) ([]byte, error) {
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

// AudioStore keeps spoken answers as files named by unguessable ids.
type AudioStore struct{ Dir string }

var audioIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Save writes audio and returns its id (128 random bits).
func (a AudioStore) Save(audio []byte) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	if err := os.MkdirAll(a.Dir, 0o750); err != nil {
		return "", fmt.Errorf("audio directory: %w", err)
	}
	tmp := filepath.Join(a.Dir, id+".tmp")
	if err := os.WriteFile(tmp, audio, 0o640); err != nil {
		return "", fmt.Errorf("write audio: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(a.Dir, id+".mp3")); err != nil {
		return "", fmt.Errorf("write audio: %w", err)
	}
	return id, nil
}

// Load reads the audio of id.
func (a AudioStore) Load(id string) ([]byte, error) {
	if !audioIDPattern.MatchString(id) {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(a.Dir, id+".mp3"))
}

package run

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

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

// Remove deletes the audio of id; audio already gone is not an error.
func (a AudioStore) Remove(id string) error {
	if !audioIDPattern.MatchString(id) {
		return nil
	}
	if err := os.Remove(filepath.Join(a.Dir, id+".mp3")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove audio %s: %w", id, err)
	}
	return nil
}

// Package svcauth issues and verifies service tokens: short-lived JWTs (HMAC-SHA256)
// that a NexusRAG process presents on every gRPC call it makes to a service. A token
// names the calling process (iss), the service called (aud), its expiry, the request id,
// and the end-user principal the call acts for, if any. A receiver believes a principal
// only from a token whose signature verifies against a key it holds; plain metadata is
// never read (ADR 0011).
package svcauth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// MinSecretBytes is the least length of a key (RFC 7518 asks HS256 keys for 256 bits).
const MinSecretBytes = 32

// Keyring holds the keys a process signs and verifies tokens with: the first key signs,
// every key verifies. Rotation adds the new key second everywhere, then moves it first,
// then drops the old one; keys read from a file are re-read by Watch, so none of these
// steps needs a restart.
type Keyring struct {
	mu      sync.RWMutex
	signing []byte
	kid     string
	keys    map[string][]byte // key id -> key

	file   string
	digest [sha256.Size]byte // of the file's contents last loaded

	vmu      sync.Mutex
	verified map[string]Claims // tokens verified with the current keys, until they expire
	gen      uint64            // counts key changes: a verification races none
}

// maxRemembered bounds the tokens an issuer or a keyring remembers.
const maxRemembered = 10_000

func (k *Keyring) remembered(token string) (Claims, bool) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	c, ok := k.verified[token]
	return c, ok
}

func (k *Keyring) generation() uint64 {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	return k.gen
}

// remember keeps a token verified with the keys of generation gen, unless they changed since.
func (k *Keyring) remember(token string, c Claims, now time.Time, gen uint64) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	if gen != k.gen {
		return
	}
	if k.verified == nil {
		k.verified = map[string]Claims{}
	}
	if len(k.verified) >= maxRemembered {
		for t, v := range k.verified {
			if now.After(v.ExpiresAt.Add(Leeway)) {
				delete(k.verified, t)
			}
		}
		if len(k.verified) >= maxRemembered {
			return
		}
	}
	k.verified[token] = c
}

// Ephemeral returns a keyring with one fresh key that nobody else holds: its tokens are
// good in this process alone (services that all run here, operator commands).
func Ephemeral() *Keyring {
	k, err := FromSecrets([]string{NewSecret()})
	if err != nil {
		panic("ephemeral service key: " + err.Error()) // a fresh secret always parses
	}
	return k
}

// FromSecrets returns a keyring of base64 secrets, the first one signing.
func FromSecrets(secrets []string) (*Keyring, error) {
	keys, err := ParseKeys([]byte(strings.Join(secrets, "\n")))
	if err != nil {
		return nil, err
	}
	k := &Keyring{}
	k.set(keys)
	return k, nil
}

// LoadFile reads a keys file: one base64 secret per line, the first one signing, '#'
// starting a comment. Watch re-reads it.
func LoadFile(path string) (*Keyring, error) {
	k := &Keyring{file: path}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// KeyID is the id of the signing key (carried in every token's header).
func (k *Keyring) KeyID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.kid
}

// Reload re-reads the keys file; changed reports whether its contents differed. On an
// error the keys in use stay as they were.
func (k *Keyring) Reload() (changed bool, err error) {
	if k.file == "" {
		return false, nil
	}
	b, err := os.ReadFile(k.file)
	if err != nil {
		return false, fmt.Errorf("service keys: %w", err)
	}
	digest := sha256.Sum256(b)
	k.mu.RLock()
	same := digest == k.digest
	k.mu.RUnlock()
	if same {
		return false, nil
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return false, fmt.Errorf("service keys %s: %w", k.file, err)
	}
	k.set(keys)
	k.mu.Lock()
	k.digest = digest
	k.mu.Unlock()
	return true, nil
}

func (k *Keyring) set(keys [][]byte) {
	m := make(map[string][]byte, len(keys))
	for _, key := range keys {
		m[KeyID(key)] = key
	}
	k.mu.Lock()
	k.signing, k.kid, k.keys = keys[0], KeyID(keys[0]), m
	k.mu.Unlock()
	k.vmu.Lock()
	k.verified, k.gen = nil, k.gen+1 // a key that is gone must stop verifying at once
	k.vmu.Unlock()
}

// Watch re-reads the keys file every interval until ctx ends, so that a rotated key is
// used (or accepted) without a restart. Failures are logged; the previous keys stay.
func (k *Keyring) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if k.file == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := k.Reload()
		switch {
		case err != nil:
			log.WarnContext(ctx, "service keys not reloaded; the previous ones stay in use", "error", err)
		case changed:
			log.InfoContext(ctx, "service keys reloaded", "signing_key_id", k.KeyID(), "keys", k.size())
		}
	}
}

func (k *Keyring) size() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

func (k *Keyring) signer() ([]byte, string) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.signing, k.kid
}

func (k *Keyring) key(kid string) ([]byte, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[kid]
	return key, ok
}

// KeyID names a key without revealing it: the first 9 bytes of its SHA-256, base64url.
// Operators see it in logs; tokens carry it as "kid".
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}

// NewSecret returns a fresh 256-bit key, base64url-encoded: one line of a keys file.
func NewSecret() string {
	b := make([]byte, MinSecretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseKeys reads keys, one base64 (standard or URL alphabet, padded or not) per line;
// blank lines and text after '#' are ignored. There must be at least one, and each must
// hold at least MinSecretBytes.
func ParseKeys(b []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		key, err := decodeBase64(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not base64", n)
		}
		if len(key) < MinSecretBytes {
			return nil, fmt.Errorf("line %d: a key must hold at least %d bytes, this one holds %d", n, MinSecretBytes, len(key))
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key (one base64 secret per line; `nexusrag servicekey create` makes one)")
	}
	return keys, nil
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

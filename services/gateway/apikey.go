package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"regexp"
	"strings"
)

// A plaintext API key is "nrk_" + key id (16 chars) + "_" + secret (52 chars), all in
// lower-case base32. The key id is public (listed, audited); the secret is shown once.
const (
	keyPrefix    = "nrk_"
	keyIDLen     = 16
	keySecretLen = 52
)

var (
	b32 = base32.StdEncoding.WithPadding(base32.NoPadding)
	// tenantPattern bounds tenant ids everywhere they enter the system.
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// errMalformedKey means the bearer value is not shaped like a NexusRAG key.
var errMalformedKey = errors.New("malformed api key")

// newKey returns a fresh key id, the plaintext key and the hash to store.
func newKey() (id, plaintext string, hash []byte) {
	idBytes := make([]byte, 10)
	secret := make([]byte, 32)
	_, _ = rand.Read(idBytes) // crypto/rand.Read never fails (Go 1.24+)
	_, _ = rand.Read(secret)
	id = strings.ToLower(b32.EncodeToString(idBytes))
	s := strings.ToLower(b32.EncodeToString(secret))
	sum := sha256.Sum256([]byte(s))
	return id, keyPrefix + id + "_" + s, sum[:]
}

// parseKey splits a plaintext key into its id and the hash of its secret.
func parseKey(plaintext string) (id string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(plaintext, keyPrefix)
	if !ok || len(rest) != keyIDLen+1+keySecretLen || rest[keyIDLen] != '_' {
		return "", nil, errMalformedKey
	}
	id, secret := rest[:keyIDLen], rest[keyIDLen+1:]
	if !isBase32Lower(id) || !isBase32Lower(secret) {
		return "", nil, errMalformedKey
	}
	sum := sha256.Sum256([]byte(secret))
	return id, sum[:], nil
}

func isBase32Lower(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// ValidTenantID reports whether s is an acceptable tenant id.
func ValidTenantID(s string) bool { return tenantPattern.MatchString(s) }

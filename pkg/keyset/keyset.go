// Package keyset encodes the position of keyset pagination (a timestamp and an id, the
// sort key of the last row of a page) as an opaque URL-safe token.
package keyset

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Position is the sort key of the last row of a page.
type Position struct {
	At time.Time `json:"t"`
	ID string    `json:"i"`
}

// Encode returns the token of p.
func Encode(p Position) string {
	b, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(b)
}

// maxToken bounds a token: an id of at most 256 bytes and a timestamp.
const maxToken = 512

// Decode reads a token; ok is false for anything Encode did not produce (bad base64 or
// JSON, a zero time, an empty, overlong or unstorable id). Callers answer that with their
// API's error.
func Decode(token string) (p Position, ok bool) {
	if len(token) > maxToken {
		return Position{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || json.Unmarshal(b, &p) != nil || p.At.IsZero() || p.ID == "" || len(p.ID) > 256 || strings.ContainsRune(p.ID, 0) {
		return Position{}, false
	}
	return p, true
}

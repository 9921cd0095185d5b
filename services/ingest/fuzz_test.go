package ingest

import (
	"errors"
	"testing"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/keyset"
)

// FuzzPageToken: any page token is a position or INVALID_PAGE_TOKEN, never a panic; a
// position survives encoding.
func FuzzPageToken(f *testing.F) {
	for _, s := range []string{"", "eyJ0IjoiMjAyNi0xMS0yNVQwMDowMDowMFoiLCJpIjoiZDEifQ", "eyJ4IjoxfQ", "not-a-token", "%%%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := decodePageToken(token)
		if err != nil {
			if !errors.Is(err, apierr.New(0, CodeInvalidPageToken, "")) {
				t.Fatalf("%q: %v", token, err)
			}
			return
		}
		again, err := decodePageToken(keyset.Encode(keyset.Position{At: c.At, ID: c.ID}))
		if err != nil || !again.At.Equal(c.At) || again.ID != c.ID {
			t.Fatalf("%q: position %v does not survive encoding (%v, %v)", token, c, again, err)
		}
	})
}

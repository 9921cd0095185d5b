package keyset_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/keyset"
)

func TestRoundTripAndRefusals(t *testing.T) {
	p := keyset.Position{At: time.Date(2026, 11, 25, 12, 0, 0, 123, time.UTC), ID: "d1"}
	got, ok := keyset.Decode(keyset.Encode(p))
	require.True(t, ok)
	require.True(t, got.At.Equal(p.At))
	require.Equal(t, p.ID, got.ID)
	for _, bad := range []string{"", "not-a-token", "eyJ4IjoxfQ", keyset.Encode(keyset.Position{ID: "d1"}), keyset.Encode(keyset.Position{At: p.At}),
		keyset.Encode(keyset.Position{At: p.At, ID: "d\x001"}), keyset.Encode(keyset.Position{At: p.At, ID: strings.Repeat("x", 300)})} {
		_, ok := keyset.Decode(bad)
		require.False(t, ok, bad)
	}
}

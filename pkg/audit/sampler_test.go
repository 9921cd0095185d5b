package audit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/audit"
)

func TestSampler(t *testing.T) {
	t0 := time.Unix(1_000, 0)
	s := audit.NewSampler(10*time.Second, 2)
	steps := []struct {
		key            string
		at             time.Duration
		ok             bool
		wantSuppressed int
	}{
		{"a", 0, true, 0},
		{"a", time.Second, false, 0},
		{"a", 2 * time.Second, false, 0},
		{"b", 3 * time.Second, true, 0},
		{"a", 10 * time.Second, true, 2}, // interval over: reports the two suppressed
		{"a", 11 * time.Second, false, 0},
		{"c", 12 * time.Second, true, 0},  // full (a, b), nothing expired: c goes to the overflow window
		{"d", 13 * time.Second, false, 0}, // shares the overflow window
		{"b", 14 * time.Second, false, 0}, // b expired and was evicted to make room; still full: overflow window
		{"e", 23 * time.Second, true, 2},  // overflow window over: reports d and b
	}
	for i, st := range steps {
		ok, suppressed := s.Allow(st.key, t0.Add(st.at))
		require.Equal(t, st.ok, ok, "step %d (%s at %s)", i, st.key, st.at)
		require.Equal(t, st.wantSuppressed, suppressed, "step %d", i)
	}
	all := audit.NewSampler(0, 1)
	for range 3 {
		ok, _ := all.Allow("x", t0)
		require.True(t, ok, "interval 0 samples nothing out")
	}
}

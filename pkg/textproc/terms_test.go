package textproc_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/textproc"
)

func TestTerms(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"The release gates for Agent 2.0", []string{"releas", "gate", "agent", "2", "0"}},
		{"Testing tested tests", []string{"test", "test", "test"}},
		{"Retrieval-augmented generation!", []string{"retriev", "augment", "generat"}},
		{"", nil},
		{"of the and", nil},
		{"Café naïve", []string{"café", "naïve"}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, textproc.Terms(tt.in), tt.in)
	}
}

package generators_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/run/generators"
)

func answer(t *testing.T, e generators.Extractive, question string, texts ...string) string {
	t.Helper()
	p := generators.Prompt{Question: question}
	for i, tx := range texts {
		p.Passages = append(p.Passages, generators.Passage{DocumentID: "d", ChunkID: string(rune('a' + i)), Text: tx})
	}
	var streamed strings.Builder
	got, err := e.Generate(context.Background(), p, func(s string) error { streamed.WriteString(s); return nil })
	require.NoError(t, err)
	require.Equal(t, got, streamed.String())
	return got
}

// TestExtractiveNamesSections: a sentence under a heading shares the heading's terms and is
// introduced by it; every passage gets a sentence before any gets a second.
func TestExtractiveNamesSections(t *testing.T) {
	got := answer(t, generators.Extractive{}, "What are the release gates?",
		"# Release gates\n\nA release ships only when every release gate is green. Release gates are checked by CI. The release manager signs off every release gate.",
		"## Gate 1: quality\n\nThe evaluation suite must reach an nDCG@10 of 0.31.",
		"## Gate 2: security\n\nNo secret appears in logs.")
	require.Equal(t, "A release ships only when every release gate is green. [1] Release gates are checked by CI. [1] "+
		"The release manager signs off every release gate. [1] "+
		"Gate 1: quality — The evaluation suite must reach an nDCG@10 of 0.31. [2] Gate 2: security — No secret appears in logs. [3]", got)

	got = answer(t, generators.Extractive{MaxSentences: 3}, "What are the release gates?",
		"# Release gates\n\nA release ships only when every release gate is green. Release gates are checked by CI.",
		"## Gate 1: quality\n\nThe evaluation suite must reach an nDCG@10 of 0.31.",
		"## Gate 2: security\n\nNo secret appears in logs.")
	require.Equal(t, "Release gates are checked by CI. [1] "+
		"Gate 1: quality — The evaluation suite must reach an nDCG@10 of 0.31. [2] Gate 2: security — No secret appears in logs. [3]", got,
		"one sentence per passage first")

	require.Equal(t, "I could not find anything about that in this corpus.", answer(t, generators.Extractive{}, "risotto?", "## Gates\n\nNo secret appears in logs."))
}

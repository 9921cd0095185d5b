package retrieval

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChunksAreIndexedWithTheirDocumentTitle(t *testing.T) {
	title := documentTitle("# Agent 2.0 release gates\n\nA release candidate ships when every gate is green.")
	require.Equal(t, "Agent 2.0 release gates", title)
	require.Equal(t, "Agent 2.0 release gates\n\n## Gate 2: reliability\n\nThe fault tests pass.",
		withTitle(title, "## Gate 2: reliability\n\nThe fault tests pass."), "a section chunk gets its document's title")
	require.Equal(t, "# Agent 2.0 release gates\n\nA release", withTitle(title, "# Agent 2.0 release gates\n\nA release"), "the chunk holding it does not")
	for _, first := range []string{"Plain text without a heading.", "## A section first\n\ntext", "#hashtag is no heading"} {
		require.Empty(t, documentTitle(first), first)
	}
	require.Equal(t, "text", withTitle("", "text"))
}

package ingest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/ingest"
)

// TestExtractHTML reads a page pandoc made (testdata/README.md): its visible text, with
// the title block and headings as markdown headings, and nothing of its scripts, styles,
// navigation or head.
func TestExtractHTML(t *testing.T) {
	page, err := os.ReadFile("testdata/handbook.html")
	require.NoError(t, err)
	text := ingest.ExtractHTML(string(page))
	require.Equal(t, strings.Join([]string{
		"# Lighthouse handbook",
		"The keepers of Port Nemo run the lighthouse in two watches.",
		"## Lamp",
		"The lamp is lit at dusk and put out at dawn. The keeper on watch logs both times.",
		"### Fuel",
		"The lamp burns paraffin. A full tank lasts three nights; the spare drums are in the north shed.",
		"## Fog signal",
		"In fog the horn sounds twice every minute until visibility is back above two nautical miles.",
		"Watch Hours", "First 18:00 to 02:00", "Second 02:00 to 10:00",
	}, "\n\n"), text)

	for _, tt := range []struct{ name, html, want string }{
		{"title when the body has no h1", "<title>Notes</title><p>a  b\n c</p>", "# Notes\n\na b c"},
		{"no title over an h1", "<title>Page</title><h1>Doc</h1><p>x</p>", "# Doc\n\nx"},
		{"only markup", "<html><head><style>p{}</style></head><body><script>x()</script></body></html>", ""},
		{"unclosed tags parse as a browser would", "<h2>Top<p>one<p>two", "## Top one two"},
		{"inline elements stay in their paragraph", "<p>a <b>bold</b> <a href=x>link</a>.</p>", "a bold link."},
		{"not HTML at all", "plain words", "plain words"},
	} {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, ingest.ExtractHTML(tt.html)) })
	}
}

func TestChunkSections(t *testing.T) {
	page, err := os.ReadFile("testdata/handbook.html")
	require.NoError(t, err)
	chunks := ingest.ChunkSections(ingest.ExtractHTML(string(page)), ingest.ChunkOptions{Size: 120, Overlap: 30})
	var got []string
	for _, c := range chunks {
		got = append(got, c.Section)
		require.NotEmpty(t, c.Text)
	}
	require.Equal(t, []string{
		"Lighthouse handbook",
		"Lighthouse handbook > Lamp",
		"Lighthouse handbook > Lamp > Fuel",
		"Lighthouse handbook > Lamp > Fuel", // the section goes on in the next chunk
		"Lighthouse handbook > Fog signal",  // a heading of a higher level closes the deeper one
		"Lighthouse handbook > Fog signal",
	}, got)
	require.Contains(t, chunks[2].Text, "### Fuel", "its own text starts at the heading, after the overlap")

	plain := ingest.ChunkSections("No headings here.\n\nJust text.", ingest.ChunkOptions{Size: 100})
	require.Len(t, plain, 1)
	require.Empty(t, plain[0].Section)
	skipped := ingest.ChunkSections("### Deep first\n\ntext\n\n# Top\n\nmore", ingest.ChunkOptions{Size: 100})
	require.Equal(t, "Deep first", skipped[0].Section, "a document may start below level 1")
	require.Equal(t, len(ingest.Chunk("## A\n\nx\n\n## B\n\ny", ingest.ChunkOptions{Size: 100})), len(ingest.ChunkSections("## A\n\nx\n\n## B\n\ny", ingest.ChunkOptions{Size: 100})),
		"sections never change the chunks")
}

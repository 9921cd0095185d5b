package extract_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/extract"
)

// TestHTML reads a page pandoc made (testdata/README.md): its visible text, with
// the title block and headings as markdown headings, and nothing of its scripts, styles,
// navigation or head.
func TestHTML(t *testing.T) {
	page, err := os.ReadFile("testdata/handbook.html")
	require.NoError(t, err)
	text := extract.HTML(string(page))
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
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, extract.HTML(tt.html)) })
	}
}

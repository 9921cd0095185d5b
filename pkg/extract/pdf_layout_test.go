package extract

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRenderRules: what render makes of blocks, one rule per case (pdftotext's real
// output is TestPDF's).
func TestRenderRules(t *testing.T) {
	body := func(page int, top float64, lines ...string) pdfBlock {
		return pdfBlock{page: page, lines: lines, height: 14, top: top, bottom: top + 18*float64(len(lines)) - 4}
	}
	big := func(page int, top, height float64, text string) pdfBlock {
		return pdfBlock{page: page, lines: []string{text}, height: height, top: top, bottom: top + height}
	}
	lots := strings.Repeat("word ", 40)
	for _, tt := range []struct {
		name   string
		blocks []pdfBlock
		want   []string
	}{
		{"a hyphenated word is joined, a compound and a dash are not", []pdfBlock{body(1, 100, "the extrac-", "tion of well-", "Known text -", "so")},
			[]string{"<!--page:1-->", "the extraction of well-Known text - so"}},
		{"a block cut from its paragraph is joined; one after a gap is not", []pdfBlock{body(1, 100, "one", "two"), body(1, 136, "three"), body(1, 180, "four")},
			[]string{"<!--page:1-->", "one two three", "four"}},
		{"larger sizes are headings, ranked", []pdfBlock{big(1, 50, 28, "Title"), body(1, 100, lots), big(1, 150, 21, "Section"), body(1, 200, lots), big(1, 250, 20.5, "Same size"), big(2, 50, 16, "Sub")},
			[]string{"<!--page:1-->", "# Title", lots[:len(lots)-1], "## Section", lots[:len(lots)-1], "## Same size", "<!--page:2-->", "### Sub"}},
		{"no heading without a letter, nor a contents line", []pdfBlock{body(1, 100, lots), big(1, 150, 28, "12"), big(1, 200, 28, "Introduction . . . . 1")},
			[]string{"<!--page:1-->", lots[:len(lots)-1], "12", "Introduction . . . . 1"}},
		{"a line starting with # is not a heading", []pdfBlock{body(1, 100, "# of keepers: 2")}, []string{"<!--page:1-->", `\# of keepers: 2`}},
		{"punctuation alone and empty pages leave nothing", []pdfBlock{body(1, 100, "—"), body(3, 100, "text")}, []string{"<!--page:3-->", "text"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.blocks { // lines as readLayout leaves them: single spaces, trimmed
				for j, l := range tt.blocks[i].lines {
					tt.blocks[i].lines[j] = strings.Join(strings.Fields(l), " ")
				}
			}
			require.Equal(t, strings.Join(tt.want, "\n\n"), render(tt.blocks))
		})
	}
	require.Empty(t, render(nil))
}

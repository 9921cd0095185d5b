package ingest_test

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/extract"
	"github.com/nexusrag/nexusrag/services/ingest"
)

func sentence(word string, n int) string {
	return strings.TrimSpace(strings.Repeat(word+" ", n)) + "."
}

func para(word string, sentences, words int) string {
	var s []string
	for range sentences {
		s = append(s, sentence(word, words))
	}
	return strings.Join(s, " ")
}

// checkChunks asserts the invariants every chunking must keep.
func checkChunks(t *testing.T, text string, o ingest.ChunkOptions, chunks []string) {
	t.Helper()
	for i, c := range chunks {
		require.LessOrEqual(t, utf8.RuneCountInString(c), o.Size, "chunk %d over size", i)
		require.NotEmpty(t, strings.TrimSpace(c))
		lines := strings.Split(c, "\n")
		require.False(t, strings.HasPrefix(lines[len(lines)-1], "#") && i < len(chunks)-1, "chunk %d ends with a heading", i)
	}
	// Nothing is lost: every word of the text appears, in order, across the chunks.
	all := strings.Fields(strings.Join(chunks, " "))
	pos := 0
	for _, w := range strings.Fields(text) {
		for pos < len(all) && all[pos] != w {
			pos++
		}
		require.Less(t, pos, len(all), "word %q missing", w)
	}
}

func TestChunk(t *testing.T) {
	o := ingest.ChunkOptions{Size: 400, Overlap: 60}
	tests := []struct {
		name string
		text string
		want func(t *testing.T, chunks []string)
	}{
		{"short text is one chunk", "  Hello world.  ", func(t *testing.T, c []string) { require.Equal(t, []string{"Hello world."}, c) }},
		{"empty text is no chunk", " \n\n ", func(t *testing.T, c []string) { require.Empty(t, c) }},
		{"paragraphs are packed whole", para("alpha", 2, 15) + "\n\n" + para("beta", 2, 15) + "\n\n" + para("gamma", 3, 15),
			func(t *testing.T, c []string) {
				require.Len(t, c, 2)
				require.Contains(t, c[0], "alpha")
				require.Contains(t, c[0], "beta")
				require.NotContains(t, c[0], "gamma")
			}},
		{"a long paragraph is split at sentences", para("delta", 12, 10),
			func(t *testing.T, c []string) {
				require.Greater(t, len(c), 1)
				for _, chunk := range c {
					require.True(t, strings.HasSuffix(chunk, "."), "ends at a sentence: %q", chunk[max(0, len(chunk)-20):])
				}
			}},
		{"a heading stays with its text", para("intro", 3, 18) + "\n\n## Release gates\n\n" + para("gate", 2, 12),
			func(t *testing.T, c []string) {
				var withHeading string
				for _, chunk := range c {
					if strings.Contains(chunk, "## Release gates") {
						withHeading = chunk
					}
				}
				require.Contains(t, withHeading, "gate gate", "the heading's chunk holds its text")
			}},
		{"overlap repeats the previous chunk's end", para("one", 5, 10) + "\n\n" + para("two", 5, 10),
			func(t *testing.T, c []string) {
				require.Greater(t, len(c), 1)
				for i := 1; i < len(c); i++ {
					first := strings.SplitN(c[i], "\n\n", 2)[0]
					if utf8.RuneCountInString(first) <= 60 {
						require.True(t, strings.HasSuffix(c[i-1], first), "chunk %d starts with the end of chunk %d", i, i-1)
					}
				}
			}},
		{"a word longer than a chunk is cut", strings.Repeat("x", 1000),
			func(t *testing.T, c []string) { require.GreaterOrEqual(t, len(c), 3) }},
		{"unicode counts characters, not bytes", para("größe", 20, 8),
			func(t *testing.T, c []string) { require.Greater(t, len(c), 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := ingest.Chunk(tt.text, o)
			tt.want(t, chunks)
			if len(strings.Fields(tt.text)) > 0 && !strings.HasPrefix(tt.name, "a word longer") {
				checkChunks(t, tt.text, o, chunks)
			}
		})
	}
}

func TestChunkSizesAcrossOptions(t *testing.T) {
	text := "# Title\n\n" + para("lorem", 30, 9) + "\n\n## Part two\n\n" + para("ipsum", 8, 30) + "\n\n" + para("dolor", 3, 4)
	for _, o := range []ingest.ChunkOptions{{Size: 100, Overlap: 0}, {Size: 100, Overlap: 50}, {Size: 350, Overlap: 40}, {Size: 1000, Overlap: 150}, {Size: 5000, Overlap: 0}} {
		checkChunks(t, text, o, ingest.Chunk(text, o))
	}
}

func TestChunkOptionsValidate(t *testing.T) {
	tests := []struct {
		o       ingest.ChunkOptions
		wantErr string
	}{
		{ingest.ChunkOptions{Size: 1000, Overlap: 150}, ""},
		{ingest.ChunkOptions{Size: 100, Overlap: 50}, ""},
		{ingest.ChunkOptions{Size: 99, Overlap: 0}, "chunk_size_chars"},
		{ingest.ChunkOptions{Size: 20001, Overlap: 0}, "chunk_size_chars"},
		{ingest.ChunkOptions{Size: 1000, Overlap: 501}, "chunk_overlap_chars"},
		{ingest.ChunkOptions{Size: 1000, Overlap: -1}, "chunk_overlap_chars"},
	}
	for _, tt := range tests {
		err := tt.o.Validate()
		if tt.wantErr == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tt.wantErr)
	}
}

// TestChunkSections: each chunk of a page pandoc made gets the path of headings its own
// text starts under.
func TestChunkSections(t *testing.T) {
	page, err := os.ReadFile("../../pkg/extract/testdata/handbook.html")
	require.NoError(t, err)
	chunks := ingest.ChunkSections(extract.HTML(string(page)), ingest.ChunkOptions{Size: 120, Overlap: 30})
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

// TestChunkPages: a PDF's chunks carry the page their own text starts on, and never a
// page marker; a chunk that would hold markers alone is left out.
func TestChunkPages(t *testing.T) {
	text := strings.Join([]string{
		extract.PageMarker(1), "# Manual", para("lamp", 2, 12), "## Fog", para("fog", 1, 12),
		extract.PageMarker(2), para("horn", 2, 12), "## Log", para("log", 1, 12),
		extract.PageMarker(4), para("ink", 1, 12), // page 3 has no text
	}, "\n\n")
	o := ingest.ChunkOptions{Size: 200, Overlap: 0}
	chunks := ingest.ChunkPages(text, o)
	var pages []int
	var sections []string
	var texts []string
	for _, c := range chunks {
		pages, sections, texts = append(pages, c.Page), append(sections, c.Section), append(texts, c.Text)
		require.NotContains(t, c.Text, "<!--", c.Text)
		require.Equal(t, strings.TrimSpace(c.Text), c.Text)
	}
	// The second chunk starts at "Fog" on page 1 and runs on into page 2; the third starts
	// on page 2 and runs on into page 4.
	require.Equal(t, []int{1, 1, 2}, pages, "%q", texts)
	require.Equal(t, []string{"Manual", "Manual > Fog", "Manual > Log"}, sections)
	checkChunks(t, strings.NewReplacer(extract.PageMarker(1), "", extract.PageMarker(2), "", extract.PageMarker(4), "").Replace(text), o, texts)

	// A page that starts with a paragraph too long to share a chunk: its marker would be a
	// chunk of its own (left out), and the paragraph's chunks are on its page.
	long := extract.PageMarker(1) + "\n\n" + para("one", 1, 33) + "\n\n" + extract.PageMarker(2) + "\n\n" + para("two", 4, 10)
	chunks = ingest.ChunkPages(long, ingest.ChunkOptions{Size: 150, Overlap: 20})
	require.Greater(t, len(chunks), 2)
	require.Equal(t, 1, chunks[0].Page)
	for _, c := range chunks[1:] {
		require.Equal(t, 2, c.Page, c.Text)
		require.NotContains(t, c.Text, "one.", "the overlap of page 1 is not counted on page 2")
	}
}

package ingest

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/nexusrag/nexusrag/pkg/extract"
)

// ChunkOptions bound chunk sizes, in characters (runes).
type ChunkOptions struct {
	Size    int // the most characters a chunk holds, overlap included
	Overlap int // characters of the previous chunk repeated at the start of the next
}

// Chunking limits and defaults.
const (
	DefaultChunkSize    = 1000
	DefaultChunkOverlap = 150
	MinChunkSize        = 100
	MaxChunkSize        = 20_000
)

// Validate checks the options; errors name the request field.
func (o ChunkOptions) Validate() error {
	switch {
	case o.Size < MinChunkSize || o.Size > MaxChunkSize:
		return fmt.Errorf("chunk_size_chars must be %d to %d", MinChunkSize, MaxChunkSize)
	case o.Overlap < 0 || o.Overlap > o.Size/2:
		return fmt.Errorf("chunk_overlap_chars must be 0 to half of chunk_size_chars (%d)", o.Size/2)
	}
	return nil
}

var (
	heading       = regexp.MustCompile(`^#{1,6}\s`)
	blankLines    = regexp.MustCompile(`\n\s*\n`)
	sentenceBreak = regexp.MustCompile(`[.!?]["')\]]*\s+`)
)

// Chunk splits text into chunks of at most o.Size characters. It keeps paragraphs whole
// when they fit, then sentences, then words; a markdown heading always starts the chunk
// that holds the text under it; each chunk after the first begins with up to o.Overlap
// characters of the previous one, cut at a sentence or word boundary.
func Chunk(text string, o ChunkOptions) []string {
	var chunks []string
	var cur strings.Builder
	overlap := ""
	emit := func() {
		if s := strings.TrimSpace(cur.String()); s != "" {
			chunks = append(chunks, s)
			overlap = tail(s, o.Overlap)
		}
		cur.Reset()
	}
	budget := func() int { return o.Size - runes(cur.String()) }
	for _, unit := range units(text) {
		sep := "\n\n"
		if cur.Len() == 0 {
			sep = ""
		}
		if runes(sep)+runes(unit) <= budget() {
			cur.WriteString(sep + unit)
			continue
		}
		emit()
		for _, piece := range split(unit, o.Size-runes(overlap)-2) {
			if cur.Len() > 0 && runes(piece)+1 > budget() {
				emit()
			}
			if cur.Len() == 0 && overlap != "" && runes(overlap)+2+runes(piece) <= o.Size {
				cur.WriteString(overlap + "\n\n")
			}
			if cur.Len() > 0 && !strings.HasSuffix(cur.String(), "\n\n") {
				cur.WriteString(" ")
			}
			cur.WriteString(piece)
		}
	}
	emit()
	return chunks
}

// units are paragraphs, with each markdown heading joined to the paragraph after it.
func units(text string) []string {
	paras := blankLines.Split(strings.ReplaceAll(text, "\r\n", "\n"), -1)
	var out []string
	pending := ""
	for _, p := range paras {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if pending != "" {
			p = pending + "\n\n" + p
			pending = ""
		}
		if lines := strings.Split(p, "\n"); heading.MatchString(lines[len(lines)-1]) {
			pending = p // a heading (or a block ending in one) waits for its text
			continue
		}
		out = append(out, p)
	}
	if pending != "" {
		out = append(out, pending)
	}
	return out
}

// split cuts a unit longer than limit into sentences, and sentences longer than limit
// into runs of words (or, for a word longer than limit, into limit-character pieces).
func split(unit string, limit int) []string {
	limit = max(limit, MinChunkSize/2)
	if runes(unit) <= limit {
		return []string{unit}
	}
	// A leading heading block stays whole, on its own lines, before the first piece.
	if lines := strings.Split(unit, "\n"); heading.MatchString(lines[0]) {
		if head, body, ok := strings.Cut(unit, "\n\n"); ok && runes(head)+2 < limit/2 {
			pieces := split(body, limit-runes(head)-2)
			pieces[0] = head + "\n\n" + pieces[0]
			return pieces
		}
	}
	var out []string
	for _, s := range sentences(unit) {
		if runes(s) <= limit {
			out = append(out, s)
			continue
		}
		var cur strings.Builder
		for _, w := range strings.Fields(s) {
			for runes(w) > limit {
				if cur.Len() > 0 {
					out = append(out, cur.String())
					cur.Reset()
				}
				r := []rune(w)
				out = append(out, string(r[:limit]))
				w = string(r[limit:])
			}
			if cur.Len() > 0 && runes(cur.String())+1+runes(w) > limit {
				out = append(out, cur.String())
				cur.Reset()
			}
			if cur.Len() > 0 {
				cur.WriteString(" ")
			}
			cur.WriteString(w)
		}
		if cur.Len() > 0 {
			out = append(out, cur.String())
		}
	}
	return out
}

func sentences(text string) []string {
	var out []string
	last := 0
	for _, m := range sentenceBreak.FindAllStringIndex(text, -1) {
		out = append(out, strings.TrimSpace(text[last:m[1]]))
		last = m[1]
	}
	if rest := strings.TrimSpace(text[last:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// tail is the end of s, at most n characters, starting at a sentence or word boundary.
func tail(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	t := string(r[len(r)-n:])
	if loc := sentenceBreak.FindStringIndex(t); loc != nil && loc[1] < len(t) {
		return strings.TrimSpace(t[loc[1]:])
	}
	if i := strings.IndexAny(t, " \n\t"); i >= 0 {
		return strings.TrimSpace(t[i:])
	}
	return ""
}

func runes(s string) int { return utf8.RuneCountInString(s) }

// SectionedChunk is a chunk and the section (and page) of the document it starts in.
type SectionedChunk struct {
	Text string
	// Section is the path of markdown headings in effect where the chunk's own text starts
	// ("Agent 2.0 > Release gates"); empty before the first heading.
	Section string
	// Page is the page the chunk's own text starts on (PDFs; 0 for documents without pages).
	Page int
}

// ChunkSections chunks text as Chunk does and gives each chunk its section. A chunk's own
// text starts after the overlap it repeats from the previous chunk (headings in the
// overlap were counted with that chunk); a chunk whose own text starts with a heading is
// in that heading's section, any other in the section the previous chunk ended in.
func ChunkSections(text string, o ChunkOptions) []SectionedChunk {
	return chunkSections(text, o, false)
}

// ChunkPages chunks a PDF's extracted text (extract.PDFExtractor.Text) as ChunkSections
// does, and gives each chunk the page its own text starts on, by the same rule as its
// section: the page markers are counted where they fall and left out of the chunks' text.
func ChunkPages(text string, o ChunkOptions) []SectionedChunk { return chunkSections(text, o, true) }

func chunkSections(text string, o ChunkOptions, paged bool) []SectionedChunk {
	chunks := Chunk(text, o)
	out := make([]SectionedChunk, 0, len(chunks))
	var path []string // path[l-1] is the heading of level l in effect ("" when a level was skipped)
	prev, page := "", 0
	for i, c := range chunks {
		own := c
		if ov := tail(prev, o.Overlap); i > 0 && ov != "" {
			own = strings.TrimPrefix(c, ov+"\n\n")
		}
		prev = c
		sc := SectionedChunk{Text: c, Section: sectionName(path), Page: page}
		if paged {
			var pages []int
			var leading bool
			own, pages, leading = extract.CutPageMarkers(own)
			if leading {
				sc.Page = pages[0]
			}
			if len(pages) > 0 {
				page = pages[len(pages)-1]
			}
			if own == "" { // page markers alone, after the overlap: nothing of its own to index
				continue
			}
			sc.Text, _, _ = extract.CutPageMarkers(c)
		}
		for j, line := range strings.Split(own, "\n") {
			if !heading.MatchString(line) {
				continue
			}
			level := len(line) - len(strings.TrimLeft(line, "#"))
			for len(path) < level-1 {
				path = append(path, "")
			}
			path = append(path[:level-1], strings.TrimSpace(strings.TrimLeft(line, "#")))
			if j == 0 {
				sc.Section = sectionName(path)
			}
		}
		out = append(out, sc)
	}
	return out
}

// sectionName joins the headings of a path: "Agent 2.0 > Release gates".
func sectionName(path []string) string {
	var parts []string
	for _, p := range path {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " > ")
}

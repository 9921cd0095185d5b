package extract

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// pdfBlock is a block of pdftotext's layout: lines of one size, usually a paragraph or a
// heading.
type pdfBlock struct {
	page  int
	lines []string
	// height is the median height of its lines (the font size, give or take the
	// font's ascent and descent); top and bottom bound it on the page.
	height, top, bottom float64
}

// readLayout reads pdftotext -bbox-layout output (XHTML: page > flow > block > line >
// word) into blocks, failing with errTextTooLarge past maxText bytes of words.
func readLayout(r io.Reader, maxText int64) ([]pdfBlock, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = false
	dec.Entity = xml.HTMLEntity
	var blocks []pdfBlock
	var block *pdfBlock
	var heights []float64
	var words []string
	var text int64
	page := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return blocks, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "page":
				page++
			case "block":
				block = &pdfBlock{page: page, top: fattr(t, "yMin"), bottom: fattr(t, "yMax")}
				heights = heights[:0]
			case "line":
				words = words[:0]
				heights = append(heights, fattr(t, "yMax")-fattr(t, "yMin"))
			case "word":
				var w string
				if err := dec.DecodeElement(&w, &t); err != nil {
					return nil, err
				}
				if text += int64(len(w)) + 1; text > maxText {
					return nil, errTextTooLarge
				}
				words = append(words, w)
			}
		case xml.EndElement:
			switch {
			case t.Name.Local == "line" && block != nil:
				if line := strings.Join(strings.Fields(strings.Join(words, " ")), " "); line != "" {
					block.lines = append(block.lines, line)
				}
			case t.Name.Local == "block" && block != nil:
				if len(block.lines) > 0 {
					block.height = median(heights)
					blocks = append(blocks, *block)
				}
				block = nil
			}
		}
	}
}

func fattr(e xml.StartElement, name string) float64 {
	f, _ := strconv.ParseFloat(attr(e, name), 64)
	return f
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// Headings are blocks set at least headingRatio times the body's size, of at most
// headingMaxLines lines and headingMaxChars characters; sizes within sizeTolerance of
// each other are one size.
const (
	headingRatio    = 1.12
	headingMaxLines = 3
	headingMaxChars = 200
	sizeTolerance   = 0.04
)

// render writes blocks as markdown: each page's text after its PageMarker, headings by
// size (the largest size is level 1), and a paragraph that pdftotext cut into blocks
// (it does at a change of line width) joined again.
func render(blocks []pdfBlock) string {
	levels := headingsBySize(blocks)
	var out []string
	var para []string
	var last *pdfBlock
	flush := func() {
		if len(para) > 0 {
			p := joinLines(para)
			if strings.HasPrefix(p, "#") { // a line that starts with # is not a heading
				p = `\` + p
			}
			out = append(out, p)
		}
		para = nil
	}
	page := 0
	for i := range blocks {
		b := &blocks[i]
		if !hasWord(b.lines) {
			continue
		}
		if b.page != page {
			flush()
			out = append(out, PageMarker(b.page))
			page, last = b.page, nil
		}
		if level := levels(b); level > 0 {
			flush()
			out = append(out, strings.Repeat("#", level)+" "+strings.Join(b.lines, " "))
			last = nil
			continue
		}
		if last == nil || !continues(last, b) {
			flush()
		}
		para = append(para, b.lines...)
		last = b
	}
	flush()
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n\n")
}

// hasWord: a block of punctuation or stray marks alone is not text.
func hasWord(lines []string) bool {
	for _, l := range lines {
		if strings.IndexFunc(l, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0 {
			return true
		}
	}
	return false
}

// headingsBySize finds the body size (the size of most text) and gives each block set
// clearly larger, and short, the level of its size among the headings' sizes.
func headingsBySize(blocks []pdfBlock) func(*pdfBlock) int {
	chars := map[float64]int{}
	for _, b := range blocks {
		for _, l := range b.lines {
			chars[round(b.height)] += utf8.RuneCountInString(l)
		}
	}
	body, most := 0.0, -1
	for h, n := range chars {
		if n > most || (n == most && h < body) {
			body, most = h, n
		}
	}
	isHeading := func(b *pdfBlock) bool {
		text := strings.Join(b.lines, " ")
		return body > 0 && b.height >= body*headingRatio && len(b.lines) <= headingMaxLines &&
			utf8.RuneCountInString(text) <= headingMaxChars && strings.IndexFunc(text, unicode.IsLetter) >= 0 &&
			!dotLeader.MatchString(text)
	}
	var sizes []float64 // the headings' sizes, largest first, one per size
	for i := range blocks {
		if isHeading(&blocks[i]) {
			sizes = append(sizes, blocks[i].height)
		}
	}
	slices.SortFunc(sizes, func(a, b float64) int { return int(math.Copysign(1, b-a)) })
	sizes = slices.CompactFunc(sizes, sameSize)
	return func(b *pdfBlock) int {
		if !isHeading(b) {
			return 0
		}
		return min(slices.IndexFunc(sizes, func(s float64) bool { return sameSize(s, b.height) })+1, 6)
	}
}

// dotLeader is a table of contents' line ("Introduction . . . . 1"), set large as it may be.
var dotLeader = regexp.MustCompile(`\.( ?\.){3,}`)

func sameSize(a, b float64) bool { return math.Abs(a-b) <= sizeTolerance*max(a, b) }

func round(h float64) float64 { return math.Round(h*2) / 2 }

// continues: b goes on the paragraph a ends, as a cut made by pdftotext looks: the same
// size, on the next line (a gap below half a line; a new paragraph leaves more).
func continues(a, b *pdfBlock) bool {
	gap := b.top - a.bottom
	return sameSize(a.height, b.height) && gap > -0.1*a.height && gap < 0.5*a.height
}

// joinLines joins a paragraph's lines. A word hyphenated at the end of a line is joined:
// whole when the next line goes on in lower case ("extrac-" "tion"; a compound cut at its
// own hyphen loses it), hyphen kept otherwise ("Anglo-" "Saxon").
func joinLines(lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			prev := lines[i-1]
			next, _ := utf8.DecodeRuneInString(l)
			before, _ := utf8.DecodeLastRuneInString(strings.TrimSuffix(prev, "-"))
			switch {
			case !strings.HasSuffix(prev, "-") || !unicode.IsLetter(before):
				b.WriteByte(' ')
			case unicode.IsLower(next):
				s := strings.TrimSuffix(b.String(), "-")
				b.Reset()
				b.WriteString(s)
			}
		}
		b.WriteString(l)
	}
	return b.String()
}

// PageMarker is the paragraph that starts page n's text in a PDF's extracted markdown
// (an HTML comment without spaces, so that no cut at a space splits it).
func PageMarker(n int) string { return fmt.Sprintf("<!--page:%d-->", n) }

var pageMarker = regexp.MustCompile(`<!--page:(\d+)-->`)

// CutPageMarkers removes the page markers from s. It returns the pages they start, in
// order, and whether s (but blank space) begins with one.
func CutPageMarkers(s string) (text string, pages []int, leading bool) {
	for _, m := range pageMarker.FindAllStringSubmatchIndex(s, -1) {
		n, _ := strconv.Atoi(s[m[2]:m[3]])
		pages = append(pages, n)
		if m[0] == len(s)-len(strings.TrimLeftFunc(s, unicode.IsSpace)) {
			leading = true
		}
	}
	if pages == nil {
		return s, nil, false
	}
	text = blankRun.ReplaceAllString(pageMarker.ReplaceAllString(s, ""), "\n\n")
	return strings.TrimSpace(text), pages, leading
}

var blankRun = regexp.MustCompile(`\n[ \t]*\n(?:[ \t]*\n)+`)

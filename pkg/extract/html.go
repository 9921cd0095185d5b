package extract

import (
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// skipped are elements whose text a reader never sees as the document's prose.
var skipped = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Noscript: true, atom.Template: true,
	atom.Svg: true, atom.Math: true, atom.Nav: true, atom.Button: true, atom.Select: true, atom.Iframe: true, atom.Object: true,
}

// blocks are elements that end a paragraph.
var blocks = map[atom.Atom]bool{
	atom.P: true, atom.Div: true, atom.Section: true, atom.Article: true, atom.Main: true, atom.Header: true, atom.Footer: true,
	atom.Aside: true, atom.Blockquote: true, atom.Pre: true, atom.Ul: true, atom.Ol: true, atom.Li: true, atom.Dl: true,
	atom.Dt: true, atom.Dd: true, atom.Table: true, atom.Tr: true, atom.Figure: true, atom.Figcaption: true, atom.Br: true,
	atom.Hr: true, atom.Address: true, atom.Details: true, atom.Summary: true, atom.Caption: true,
}

var headingLevels = map[atom.Atom]int{atom.H1: 1, atom.H2: 2, atom.H3: 3, atom.H4: 4, atom.H5: 5, atom.H6: 6}

// HTML is the visible text of an HTML document as the chunker reads markdown:
// paragraphs separated by blank lines, and each heading (h1..h6) as a markdown heading of
// its level, so chunks start at headings and carry their section. Scripts, styles,
// navigation and the head (but its title, when the body has no h1) are left out. The
// parser is the HTML standard's (x/net/html): any input parses, as a browser would.
func HTML(src string) string {
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil { // the standard's parser accepts any input; only a reader's error reaches here
		return ""
	}
	var b paragraphs
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			b.text(n.Data)
			return
		case html.ElementNode:
			if skipped[n.DataAtom] {
				return
			}
			if level, ok := headingLevels[n.DataAtom]; ok {
				b.heading(level, textOf(n))
				return
			}
			if n.DataAtom == atom.Td || n.DataAtom == atom.Th {
				b.text(" ")
			}
		}
		block := n.Type == html.ElementNode && blocks[n.DataAtom]
		if block {
			b.end()
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if block {
			b.end()
		}
	}
	walk(doc)
	b.end()
	out := strings.Join(b.done, "\n\n")
	if title := titleOf(doc); title != "" && !hasH1(doc) {
		out = "# " + title + "\n\n" + out
	}
	return out
}

// paragraphs collects text into paragraphs, whitespace collapsed as a browser renders it.
type paragraphs struct {
	cur  strings.Builder
	done []string
}

func (p *paragraphs) text(s string) { p.cur.WriteString(s) }

func (p *paragraphs) end() {
	if s := strings.Join(strings.Fields(p.cur.String()), " "); s != "" {
		p.done = append(p.done, s)
	}
	p.cur.Reset()
}

func (p *paragraphs) heading(level int, text string) {
	p.end()
	if text != "" {
		p.done = append(p.done, strings.Repeat("#", level)+" "+text)
	}
}

// textOf is the visible text under n, whitespace collapsed.
func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && skipped[n.DataAtom] {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

func find(n *html.Node, a atom.Atom) *html.Node {
	if n.Type == html.ElementNode && n.DataAtom == a {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := find(c, a); f != nil {
			return f
		}
	}
	return nil
}

func titleOf(doc *html.Node) string {
	if t := find(doc, atom.Title); t != nil {
		return textOf(t)
	}
	return ""
}

func hasH1(doc *html.Node) bool { return find(doc, atom.H1) != nil }

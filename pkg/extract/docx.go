package extract

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// ContentTypeDOCX is a Word document (Office Open XML).
const ContentTypeDOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

// maxExpansion bounds what one part of a DOCX may decompress to, against zip bombs.
const maxExpansion = 64 << 20

// Errors of DOCX; each message is what the uploader needs to hear.
var (
	ErrNotDOCX      = errors.New("the file is not a DOCX: it is corrupt, encrypted (Word saves password-protected files in another format), or another kind of file")
	ErrDOCXTooLarge = fmt.Errorf("the DOCX expands to more than %d MiB of XML (a zip bomb?)", maxExpansion>>20)
)

const wordML = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

// DOCX is the text of a Word document as the chunker reads markdown: paragraphs separated
// by blank lines, and paragraphs styled as the title or a heading (by the style's name,
// so translated style ids count too) as markdown headings of their level. Tables give one
// paragraph per cell; footnotes, comments, headers and footers are left out.
func DOCX(data []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", ErrNotDOCX
	}
	levels, err := headingStyles(zr)
	if err != nil {
		return "", err
	}
	doc, err := part(zr, "word/document.xml")
	if err != nil {
		return "", err
	}
	dec := xml.NewDecoder(doc)
	var out []string
	var para strings.Builder
	level := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrDOCXTooLarge) {
			return "", err
		}
		if err != nil {
			return "", ErrNotDOCX
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Space != wordML {
				continue
			}
			switch t.Name.Local {
			case "p":
				para.Reset()
				level = 0
			case "pStyle":
				level = levels[attr(t, "val")]
			case "tab", "br", "cr":
				para.WriteByte(' ')
			case "t":
				var s string
				if err := dec.DecodeElement(&s, &t); err != nil {
					return "", ErrNotDOCX
				}
				para.WriteString(s)
			}
		case xml.EndElement:
			if t.Name.Space != wordML || t.Name.Local != "p" {
				continue
			}
			text := strings.Join(strings.Fields(para.String()), " ")
			switch {
			case text == "":
			case level > 0:
				out = append(out, strings.Repeat("#", level)+" "+text)
			default:
				out = append(out, text)
			}
			para.Reset()
		}
	}
	return strings.Join(out, "\n\n"), nil
}

var headingName = regexp.MustCompile(`^heading ([1-6])$`)

// headingStyles maps the style ids of word/styles.xml whose name is the title (level 1)
// or "heading N" to their level; a document without styles has none.
func headingStyles(zr *zip.Reader) (map[string]int, error) {
	levels := map[string]int{}
	r, err := part(zr, "word/styles.xml")
	if errors.Is(err, errMissingPart) {
		return levels, nil
	}
	if err != nil {
		return nil, err
	}
	var styles struct {
		Styles []struct {
			ID   string `xml:"styleId,attr"`
			Name struct {
				Val string `xml:"val,attr"`
			} `xml:"name"`
		} `xml:"style"`
	}
	if err := xml.NewDecoder(r).Decode(&styles); err != nil {
		if errors.Is(err, ErrDOCXTooLarge) {
			return nil, err
		}
		return nil, ErrNotDOCX
	}
	for _, s := range styles.Styles {
		name := strings.ToLower(s.Name.Val)
		if name == "title" {
			levels[s.ID] = 1
		} else if m := headingName.FindStringSubmatch(name); m != nil {
			levels[s.ID], _ = strconv.Atoi(m[1])
		}
	}
	return levels, nil
}

var errMissingPart = errors.New("missing part")

// part opens a part of the package, its decompressed size bounded by maxExpansion
// whatever the zip's headers claim.
func part(zr *zip.Reader, name string) (io.Reader, error) {
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		if f.UncompressedSize64 > maxExpansion {
			return nil, ErrDOCXTooLarge
		}
		rc, err := f.Open()
		if err != nil {
			return nil, ErrNotDOCX
		}
		return &bounded{r: rc, left: maxExpansion}, nil
	}
	if name == "word/document.xml" {
		return nil, ErrNotDOCX
	}
	return nil, errMissingPart
}

// bounded reads at most left bytes, then fails with ErrDOCXTooLarge.
type bounded struct {
	r    io.Reader
	left int64
}

func (b *bounded) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrDOCXTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func attr(e xml.StartElement, local string) string {
	for _, a := range e.Attr {
		if a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

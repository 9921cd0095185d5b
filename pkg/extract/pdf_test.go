package extract_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/extract"
)

var pdfLimits = extract.PDFLimits{MaxPages: 2000, MaxText: 10 << 20, Timeout: 20 * time.Second}

func newPDFExtractor(tb testing.TB, l extract.PDFLimits) *extract.PDFExtractor {
	tb.Helper()
	x := extract.NewPDFExtractor(l)
	require.NoError(tb, x.Available(), "the PDF tests need poppler-utils: make deps")
	return x
}

func readTestdata(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(tb, err)
	return b
}

// TestPDF reads the three pages chromium printed from manual.md (testdata/README.md): the
// title and headings back as markdown headings of their level (by their size), each page
// after its marker, and the paragraph pdftotext cut in two at a shorter line joined again.
// The same file "copy-protected" (an owner password only) reads the same.
func TestPDF(t *testing.T) {
	x := newPDFExtractor(t, pdfLimits)
	text, err := x.Text(context.Background(), readTestdata(t, "manual.pdf"))
	require.NoError(t, err)
	protected, err := x.Text(context.Background(), readTestdata(t, "protected.pdf"))
	require.NoError(t, err)
	require.Equal(t, text, protected)
	require.Equal(t, strings.Join([]string{
		"<!--page:1-->",
		"# Keeper’s manual",
		"This manual is for the keepers of the Port Nemo lighthouse. It covers the lamp, the fog signal and the log book, one subject to a page.",
		"## The lamp",
		"The lamp is lit at dusk and put out at dawn. The keeper on watch writes both times in the log book, with the state of the sea and the wind.",
		"### Fuel",
		"The lamp burns paraffin. A full tank lasts three nights; the spare drums are kept in the north shed, away from the stove. Order more when fewer than four drums are left.",
		"<!--page:2-->",
		"## The fog signal",
		"In fog the horn sounds twice every minute until visibility is back above two nautical miles. The compressor is started ten minutes before the horn is needed, so that the tank holds its pressure.",
		"### Compressor",
		"The compressor’s oil is changed every two hundred hours of running. Its filter is cleaned every month, whether the horn was used or not.",
		"<!--page:3-->",
		"## The log book",
		"Every watch ends with an entry in the log book: the times the lamp was lit and put out, the weather, every ship sighted and anything that was repaired. Entries are written in ink and never erased; a mistake is struck through once and initialled.",
	}, "\n\n"), text)
}

// TestPDFRefusesWhatItCannotRead: each PDF that yields no text fails with its own code,
// never an empty success; the limits stop the 10,000-page file before any page is read,
// and the decompression bomb (107 KB that inflate to a 20 MB content stream) by time or
// by its text.
func TestPDFRefusesWhatItCannotRead(t *testing.T) {
	manual := readTestdata(t, "manual.pdf")
	small := pdfLimits
	small.MaxText = 4096
	short := pdfLimits
	short.Timeout = 150 * time.Millisecond
	for _, tt := range []struct {
		name   string
		data   []byte
		limits extract.PDFLimits
		code   string
	}{
		{"scanned: an image, no text layer", readTestdata(t, "scanned.pdf"), pdfLimits, extract.CodePDFNoText},
		{"encrypted with a password", readTestdata(t, "encrypted.pdf"), pdfLimits, extract.CodePDFEncrypted},
		{"truncated", manual[:len(manual)/2], pdfLimits, extract.CodePDFCorrupt},
		{"not a PDF", readTestdata(t, "handbook.html"), pdfLimits, extract.CodePDFCorrupt},
		{"empty", nil, pdfLimits, extract.CodePDFCorrupt},
		{"10,000 pages", readTestdata(t, "long.pdf"), pdfLimits, extract.CodePDFTooManyPages},
		{"a bomb, by its text", readTestdata(t, "bomb.pdf"), small, extract.CodePDFTextTooLarge},
		{"a bomb, by time", readTestdata(t, "bomb.pdf"), short, extract.CodePDFTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text, err := newPDFExtractor(t, tt.limits).Text(context.Background(), tt.data)
			require.Empty(t, text)
			e, ok := apierr.From(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, tt.code, e.Code, e.Message)
		})
	}
}

// TestPDFLeavesTheCallersCancellationAlone: a batch that ends is not the PDF's fault, and
// a machine without poppler-utils says so.
func TestPDFLeavesTheCallersCancellationAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := newPDFExtractor(t, pdfLimits).Text(ctx, readTestdata(t, "bomb.pdf"))
	require.ErrorIs(t, err, context.DeadlineExceeded)

	t.Setenv("PATH", t.TempDir())
	x := extract.NewPDFExtractor(pdfLimits)
	require.ErrorContains(t, x.Available(), "pdftotext not found")
	_, err = x.Text(context.Background(), readTestdata(t, "manual.pdf"))
	e, _ := apierr.From(err)
	require.Equal(t, extract.CodePDFUnavailable, e.Code)
}

func TestCutPageMarkers(t *testing.T) {
	for _, tt := range []struct {
		in, text string
		pages    []int
		leading  bool
	}{
		{"no markers", "no markers", nil, false},
		{"<!--page:2-->\n\n## Fog\n\ntext", "## Fog\n\ntext", []int{2}, true},
		{"end of one.\n\n<!--page:3-->\n\nstart of four\n\n<!--page:4-->", "end of one.\n\nstart of four", []int{3, 4}, false},
		{"  <!--page:7-->", "", []int{7}, true},
	} {
		text, pages, leading := extract.CutPageMarkers(tt.in)
		require.Equal(t, tt.text, text, tt.in)
		require.Equal(t, tt.pages, pages, tt.in)
		require.Equal(t, tt.leading, leading, tt.in)
	}
}

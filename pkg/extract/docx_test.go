package extract_test

import (
	"archive/zip"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/extract"
)

// TestDOCX reads a document pandoc made from the same markdown as the HTML page
// (testdata/README.md): the title and headings as markdown headings of their level, the
// table's cells as paragraphs.
func TestDOCX(t *testing.T) {
	doc, err := os.ReadFile("testdata/handbook.docx")
	require.NoError(t, err)
	text, err := extract.DOCX(doc)
	require.NoError(t, err)
	require.Equal(t, strings.Join([]string{
		"# Lighthouse handbook",
		"The keepers of Port Nemo run the lighthouse in two watches.",
		"## Lamp",
		"The lamp is lit at dusk and put out at dawn. The keeper on watch logs both times.",
		"### Fuel",
		"The lamp burns paraffin. A full tank lasts three nights; the spare drums are in the north shed.",
		"## Fog signal",
		"In fog the horn sounds twice every minute until visibility is back above two nautical miles.",
		"Lamp | Fog signal", // pandoc writes the raw HTML nav's links as text in a DOCX
		"Watch", "Hours", "First", "18:00 to 02:00", "Second", "02:00 to 10:00",
	}, "\n\n"), text)
}

func TestDOCXRefusesWhatItCannotRead(t *testing.T) {
	doc, err := os.ReadFile("testdata/handbook.docx")
	require.NoError(t, err)
	html, err := os.ReadFile("testdata/handbook.html")
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"truncated":     doc[:len(doc)/2],
		"not a zip":     html,
		"empty":         nil,
		"zip, not DOCX": zipOf(t, map[string][]byte{"readme.txt": []byte("hello")}),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := extract.DOCX(data)
			require.ErrorIs(t, err, extract.ErrNotDOCX)
		})
	}

	// A zip bomb: a few hundred KiB that expand to 100 MiB of XML. Made with archive/zip.
	bomb := zipOf(t, map[string][]byte{"word/document.xml": append([]byte(`<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>`),
		bytes.Repeat([]byte(" "), 100<<20)...)})
	require.Less(t, len(bomb), 1<<20)
	_, err = extract.DOCX(bomb)
	require.ErrorIs(t, err, extract.ErrDOCXTooLarge)
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

package main_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/extract"
)

// upload posts a multipart form: fields, then a file part (fileType "" sends no Content-Type).
func (p *platform) upload(key string, fields map[string]string, filename, fileType, content string) response {
	p.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(p.t, mw.WriteField(k, v))
	}
	if filename != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
		if fileType != "" {
			h.Set("Content-Type", fileType)
		}
		w, err := mw.CreatePart(h)
		require.NoError(p.t, err)
		_, _ = w.Write([]byte(content))
	}
	require.NoError(p.t, mw.Close())
	return p.do(http.MethodPost, "/v1/documents", key, buf.String(), "Content-Type", mw.FormDataContentType())
}

// waitDocument polls a document until it reaches status.
func (p *platform) waitDocument(key, id, status string) map[string]any {
	p.t.Helper()
	var doc map[string]any
	require.Eventually(p.t, func() bool {
		r := p.do(http.MethodGet, "/v1/documents/"+id, key, "")
		doc, _ = r.data()["document"].(map[string]any)
		return doc["status"] == status
	}, 20*time.Second, 20*time.Millisecond, "document %s never reached %s", id, status)
	return doc
}

func TestDocumentsOverHTTP(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"INGEST_MAX_BYTES=2048"})
	_, editor := p.createKey("t1", "editor")
	_, reader := p.createKey("t1", "reader")
	_, admin := p.createKey("t1", "admin")
	_, other := p.createKey("t2", "editor")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", editor, `{"allow_missing":true}`).Status)

	// Multipart upload of a markdown file.
	r := p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": "gates"}, "gates.md", "text/markdown; charset=utf-8",
		"# Release gates\n\nAgent 2.0 ships only when the evaluation suite passes.")
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, "gates", r.data()["document_id"])
	require.Equal(t, "/v1/documents/gates", r.data()["status_url"])
	require.Equal(t, "queued", r.data()["status"])
	doc := p.waitDocument(reader, "gates", "succeeded")
	require.Equal(t, "text/markdown", doc["content_type"])
	require.Equal(t, "gates.md", doc["filename"])
	require.EqualValues(t, 1, doc["chunk_count"])

	// A JSON file, and a file typed only by its extension.
	r = p.upload(editor, map[string]string{"corpus_id": "c1"}, "notes.json", "application/json", `{"text":"from a json file"}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	r = p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": "plain"}, "plain.txt", "", "typed by extension")
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	// The JSON body at /v1/documents and /v1/documents/text.
	r = p.do(http.MethodPost, "/v1/documents", editor, `{"corpus_id":"c1","text":"json body","document_id":"j1"}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	r = p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"c1","text":"text route","document_id":"t1","filename":"t.txt"}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, "t1", r.data()["document_id"])
	p.waitDocument(reader, "t1", "succeeded")

	errs := []struct {
		name   string
		resp   func() response
		status int
		code   string
	}{
		{"unsupported file type", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "a.doc", "application/msword", "x")
		}, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"},
		{"untyped file of unknown extension", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "a.bin", "", "x")
		}, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"},
		{"unsupported body type", func() response {
			return p.do(http.MethodPost, "/v1/documents", editor, "corpus_id=c1", "Content-Type", "application/x-www-form-urlencoded")
		}, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"},
		{"empty file", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "a.txt", "text/plain", "")
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"empty text", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"c1","text":"  "}`)
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"no file part", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "", "", "")
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"unknown form field", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1", "colour": "red"}, "a.txt", "text/plain", "x")
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"bad overwrite flag", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1", "overwrite": "maybe"}, "a.txt", "text/plain", "x")
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"malformed json", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":`)
		}, http.StatusBadRequest, "MALFORMED_REQUEST"},
		{"text over INGEST_MAX_BYTES", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"c1","text":"`+strings.Repeat("a", 2049)+`"}`)
		}, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"file over INGEST_MAX_BYTES", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "big.txt", "text/plain", strings.Repeat("a", 4096))
		}, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"body over the upload limit", func() response {
			return p.upload(editor, map[string]string{"corpus_id": "c1"}, "huge.txt", "text/plain", strings.Repeat("a", 2<<20))
		}, http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE"},
		{"unknown corpus", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"nope","text":"x"}`)
		}, http.StatusNotFound, "NOT_FOUND"},
		{"another tenant's corpus", func() response {
			return p.upload(other, map[string]string{"corpus_id": "c1"}, "a.txt", "text/plain", "x")
		}, http.StatusNotFound, "NOT_FOUND"},
		{"existing id without overwrite", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"c1","text":"again","document_id":"gates"}`)
		}, http.StatusConflict, "DOCUMENT_EXISTS"},
		{"reader may not upload", func() response {
			return p.upload(reader, map[string]string{"corpus_id": "c1"}, "a.txt", "text/plain", "x")
		}, http.StatusForbidden, "FORBIDDEN"},
		{"bad reindex sizes", func() response {
			return p.do(http.MethodPost, "/v1/documents/gates/reindex", editor, `{"chunk_size_chars":50}`)
		}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"unknown document", func() response { return p.do(http.MethodGet, "/v1/documents/nope", reader, "") }, http.StatusNotFound, "NOT_FOUND"},
		{"another tenant's document", func() response { return p.do(http.MethodDelete, "/v1/documents/gates", other, "") }, http.StatusNotFound, "NOT_FOUND"},
		{"bad list filter", func() response { return p.do(http.MethodGet, "/v1/documents?status=done", reader, "") }, http.StatusBadRequest, "INVALID_ARGUMENT"},
		{"bad page token", func() response { return p.do(http.MethodGet, "/v1/documents?page_token=zzz", reader, "") }, http.StatusBadRequest, "INVALID_PAGE_TOKEN"},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			r := e.resp()
			require.Equal(t, e.status, r.Status, string(r.Body))
			require.Equal(t, e.code, r.errorCode(), string(r.Body))
		})
	}

	// Overwrite, reindex, delete.
	r = p.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id":"c1","text":"replaced text","document_id":"gates","overwrite":true}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, true, r.data()["replaced"])
	p.waitDocument(reader, "gates", "succeeded")
	r = p.do(http.MethodPost, "/v1/documents/gates/reindex", editor, `{"chunk_size_chars":500,"chunk_overlap_chars":50}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	// (409 DOCUMENT_BUSY while queued or processing is tested in services/ingest, where no
	// worker races the request.)
	doc = p.waitDocument(reader, "gates", "succeeded")
	require.EqualValues(t, 500, doc["chunk_size_chars"])

	list := p.do(http.MethodGet, "/v1/documents?corpus_id=c1&page_size=2", reader, "")
	require.Equal(t, http.StatusOK, list.Status, string(list.Body))
	require.Len(t, list.data()["documents"], 2)
	require.NotEmpty(t, list.data()["next_page_token"])
	next := p.do(http.MethodGet, "/v1/documents?corpus_id=c1&page_size=2&page_token="+list.data()["next_page_token"].(string), reader, "")
	require.Equal(t, http.StatusOK, next.Status, string(next.Body))
	require.Len(t, next.data()["documents"], 2)

	del := p.do(http.MethodDelete, "/v1/documents/gates", editor, "")
	require.Equal(t, http.StatusOK, del.Status, string(del.Body))
	require.EqualValues(t, 1, del.data()["chunks_deleted"])
	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/documents/gates", reader, "").Status)

	// The legacy path answers the same route in the pre-v1 shape.
	legacy := p.do(http.MethodGet, "/documents/t1", reader, "")
	require.Equal(t, http.StatusOK, legacy.Status, string(legacy.Body))
	require.Equal(t, "t1", legacy.JSON["document"].(map[string]any)["document_id"])

	require.Eventually(t, func() bool {
		types := map[string]bool{}
		for _, ev := range p.auditEvents(admin, "") {
			types[ev["event_type"].(string)] = true
		}
		return types["documents.ingest.enqueued"] && types["documents.reindex.enqueued"] && types["documents.deleted"]
	}, 5*time.Second, 50*time.Millisecond, "ingest, reindex and delete are audited")
}

func TestSeedDemo(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	out, err := run(t, env, "", "seed-demo")
	require.NoError(t, err)
	require.Equal(t, "seeded: tenant t1, corpus c1: 3 documents, 10 chunks\n", out)
	out, err = run(t, env, "", "seed-demo")
	require.NoError(t, err)
	require.Equal(t, "already seeded: tenant t1, corpus c1 (3 documents)\n", out)

	out, err = run(t, env, "", "provider-smoke", "--tenant", "t1", "--corpus", "c1", "--query", "What are the release gates for Agent 2.0?", "--top-k", "3")
	require.NoError(t, err)
	require.Contains(t, out, "1  ")
	require.Regexp(t, `(?m)^1\s+\S+\s+agent2-release-gates\s`, out, "the release gates document answers best")
}

// A tiny collection in the SMART format: eval must work for any collection, not only CISI.
func TestEvalRetrievalOnATinyCollection(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	dir := filepath.Join("testdata", "smart-tiny")
	out, err := run(t, env, "", "eval", "retrieval", "--docs", filepath.Join(dir, "docs"), "--queries", filepath.Join(dir, "queries"),
		"--qrels", filepath.Join(dir, "qrels"), "--k", "2", "--chunking", "default,2000/200")
	require.NoError(t, err)
	require.Contains(t, out, "ingested 3 documents, 3 chunks")
	// One row per ranker, the platform's beside bleve's, through the same metric code.
	for _, ranker := range []string{"platform, default chunks (1000/150)", "platform, 2000/200 chunks",
		"english, OR match, tf-idf", "english, OR match, bm25"} {
		require.Regexp(t, regexp.QuoteMeta(ranker)+`\s+2\s+1\.0000\s+1\.0000\s+1\.0000\s+\d+\.\d\d\s+\d+\.\d\d\n`, out)
	}

	_, err = run(t, env, "", "eval", "retrieval", "--docs", filepath.Join(dir, "docs"), "--queries", filepath.Join(dir, "queries"),
		"--qrels", filepath.Join(dir, "qrels"), "--chunking", "500/600")
	require.ErrorContains(t, err, "OVERLAP < SIZE")
	_, err = run(t, env, "", "eval", "retrieval", "--docs", filepath.Join(dir, "missing"), "--queries", filepath.Join(dir, "queries"), "--qrels", filepath.Join(dir, "qrels"))
	require.ErrorContains(t, err, "no such file")
}

// TestHTMLDocumentsCiteTheirSection: an HTML page and a DOCX (made by pandoc) uploaded as
// files are chunked by their text, and a run's citations name the section (the headings)
// the cited chunk is under; a page with no visible text and a broken DOCX are refused at once.
func TestHTMLDocumentsCiteTheirSection(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, editor := p.createKey("t1", "editor")
	_, reader := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", editor, `{"allow_missing":true}`).Status)
	page, err := os.ReadFile("../../pkg/extract/testdata/handbook.html")
	require.NoError(t, err)
	r := p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": "handbook", "chunk_size_chars": "200", "chunk_overlap_chars": "0"},
		"handbook.html", "", string(page))
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	doc := p.waitDocument(reader, "handbook", "succeeded")
	require.Equal(t, "text/html", doc["content_type"])

	_, events := p.runStream(reader, `{"session_id":"html","corpus_id":"c1","message":"What fuel does the lamp burn?"}`)
	var sections []string
	for _, c := range citations(events, "handbook") {
		sections = append(sections, c["section"].(string))
	}
	require.Contains(t, sections, "Lighthouse handbook > Lamp > Fuel", "citations: %v", sections)

	empty := p.upload(editor, map[string]string{"corpus_id": "c1"}, "empty.html", "text/html", "<html><head><title></title><script>x()</script></head><body></body></html>")
	require.Equal(t, http.StatusBadRequest, empty.Status, string(empty.Body))
	require.Contains(t, string(empty.Body), "no visible text")

	// The same handbook as a Word document (pandoc made both): its text is extracted at
	// upload, and its headings give the same sections.
	docx, err := os.ReadFile("../../pkg/extract/testdata/handbook.docx")
	require.NoError(t, err)
	r = p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": "handbook-docx", "chunk_size_chars": "200", "chunk_overlap_chars": "0"},
		"handbook.docx", "", string(docx))
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, extract.ContentTypeDOCX, p.waitDocument(reader, "handbook-docx", "succeeded")["content_type"])
	_, events = p.runStream(reader, `{"session_id":"docx","corpus_id":"c1","message":"When does the fog horn sound?","top_k":10}`)
	sections = sections[:0]
	for _, c := range citations(events, "handbook-docx") {
		sections = append(sections, c["section"].(string))
	}
	require.Contains(t, sections, "Lighthouse handbook > Fog signal", "citations: %v", sections)

	corrupt := p.upload(editor, map[string]string{"corpus_id": "c1"}, "broken.docx", "", string(docx[:len(docx)/2]))
	require.Equal(t, http.StatusBadRequest, corrupt.Status, string(corrupt.Body))
	require.Equal(t, "file", corrupt.JSON["error"].(map[string]any)["details"].(map[string]any)["field"])
	require.Contains(t, string(corrupt.Body), "not a DOCX")
}

// citations are the citations of a run's message.final that cite a document.
func citations(events []sseEvent, documentID string) []map[string]any {
	var out []map[string]any
	for _, e := range events {
		if e.Type != "message.final" {
			continue
		}
		for _, c := range e.Data["citations"].([]any) {
			if c := c.(map[string]any); c["document_id"] == documentID {
				out = append(out, c)
			}
		}
	}
	return out
}

// TestPDFDocumentsCiteTheirPage: a PDF (printed by chromium) uploaded as a file, or as
// base64 in JSON, is read by the worker, and a run's citations name the page and the
// section of the cited chunk. PDFs without text, encrypted, damaged or of 10,000 pages
// fail with their code in failure_reason, never an empty success; a file that is not a
// PDF at all is refused at upload.
func TestPDFDocumentsCiteTheirPage(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, editor := p.createKey("t1", "editor")
	_, reader := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", editor, `{"allow_missing":true}`).Status)
	testdata := func(name string) string {
		b, err := os.ReadFile("../../pkg/extract/testdata/" + name)
		require.NoError(t, err)
		return string(b)
	}
	manual := testdata("manual.pdf")
	r := p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": "manual", "chunk_size_chars": "300", "chunk_overlap_chars": "0"},
		"manual.pdf", "", manual)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	doc := p.waitDocument(reader, "manual", "succeeded")
	require.Equal(t, extract.ContentTypePDF, doc["content_type"])
	require.EqualValues(t, len(manual), doc["size_bytes"])

	_, events := p.runStream(reader, `{"session_id":"pdf","corpus_id":"c1","message":"When does the fog horn sound?"}`)
	cited := citations(events, "manual")
	require.NotEmpty(t, cited, "events: %v", events)
	require.Equal(t, "Keeper’s manual > The fog signal", cited[0]["section"], "citations: %v", cited)
	require.EqualValues(t, 2, cited[0]["page"], "citations: %v", cited)

	// The same bytes as base64 in JSON, beside the text route's fields.
	body, err := json.Marshal(map[string]any{"corpus_id": "c1", "document_id": "manual-json", "content_type": "application/pdf", "file": []byte(manual)})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", editor, string(body)).Status)
	require.NotZero(t, p.waitDocument(reader, "manual-json", "succeeded")["chunk_count"])

	failing := map[string]struct{ data, code string }{
		"scanned":   {testdata("scanned.pdf"), extract.CodePDFNoText},
		"encrypted": {testdata("encrypted.pdf"), extract.CodePDFEncrypted},
		"truncated": {manual[:len(manual)/2], extract.CodePDFCorrupt},
		"long":      {testdata("long.pdf"), extract.CodePDFTooManyPages},
	}
	for id, tt := range failing {
		r := p.upload(editor, map[string]string{"corpus_id": "c1", "document_id": id}, id+".pdf", "application/pdf", tt.data)
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	}
	for id, tt := range failing {
		doc := p.waitDocument(reader, id, "failed")
		require.True(t, strings.HasPrefix(doc["failure_reason"].(string), tt.code+": "), "%s: %v", id, doc["failure_reason"])
		require.EqualValues(t, 0, doc["chunk_count"], id)
	}

	notPDF := p.upload(editor, map[string]string{"corpus_id": "c1"}, "page.pdf", "", testdata("handbook.html"))
	require.Equal(t, http.StatusBadRequest, notPDF.Status, string(notPDF.Body))
	require.Equal(t, "file", notPDF.JSON["error"].(map[string]any)["details"].(map[string]any)["field"])
	require.Contains(t, string(notPDF.Body), "not a PDF")
}

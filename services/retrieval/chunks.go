package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// Limits of the chunk API.
const (
	maxQueryChars = 4096
	maxChunks     = 10_000
	// maxChunkBytes admits the largest chunk the ingest service makes (20,000 characters
	// of up to 4 bytes each).
	maxChunkBytes     = 80 << 10
	maxDocumentID     = 256
	maxBatchDocuments = 500
	maxBatchChunks    = 20_000
)

// upsert validates, embeds and stores documents; field prefixes error fields ("" for the
// single-document request). progress, when not nil, is told after each batch of chunks
// embedded (an error from it ends the call).
func (s *Server) upsert(ctx context.Context, tenant, corpus string, docs []*retrievalv1.DocumentChunks, field string,
	progress func(embedded, total int) error) ([]int32, []string, error) {
	if err := principal.RequireCorpus(ctx, corpus); err != nil {
		return nil, nil, err // the worker acts for itself; a user's call is held to its key's corpora
	}
	ids := make([]string, len(docs))
	versions := map[string]int64{}
	seen := make(map[string]bool, len(docs))
	var texts, indexed []string
	var inputs []*retrievalv1.ChunkInput
	counts := make([]int32, len(docs))
	for d, doc := range docs {
		prefix := ""
		if field != "" {
			prefix = fmt.Sprintf("%s[%d].", field, d)
		}
		if err := validateDocumentRef(tenant, corpus, doc.GetDocumentId()); err != nil {
			return nil, nil, err
		}
		if seen[doc.GetDocumentId()] {
			return nil, nil, apierr.InvalidArgument(prefix+"document_id", fmt.Sprintf("document %s appears twice", doc.GetDocumentId()))
		}
		seen[doc.GetDocumentId()] = true
		ids[d] = doc.GetDocumentId()
		switch v := doc.GetVersion(); {
		case v < 0:
			return nil, nil, apierr.InvalidArgument(prefix+"version", "version must not be negative (0: no fence)")
		case v > 0:
			versions[doc.GetDocumentId()] = v
		}
		if len(doc.GetChunks()) > maxChunks {
			return nil, nil, apierr.InvalidArgument(prefix+"chunks", fmt.Sprintf("at most %d chunks per document", maxChunks))
		}
		for i, c := range doc.GetChunks() {
			if c.GetText() == "" || len(c.GetText()) > maxChunkBytes || !utf8.ValidString(c.GetText()) {
				return nil, nil, apierr.InvalidArgument(fmt.Sprintf("%schunks[%d].text", prefix, i), fmt.Sprintf("chunk text must be valid UTF-8, 1 byte to %d KiB", maxChunkBytes>>10))
			}
			texts = append(texts, c.GetText())
			indexed = append(indexed, withTitle(documentTitle(doc.GetChunks()[0].GetText()), c.GetText()))
			inputs = append(inputs, c)
		}
		counts[d] = int32(len(doc.GetChunks()))
	}
	if len(texts) > maxBatchChunks {
		return nil, nil, apierr.InvalidArgument(field+"chunks", fmt.Sprintf("at most %d chunks per call", maxBatchChunks))
	}
	vectors, err := embedReporting(ctx, s.router.Embedder(), indexed, progress)
	if err != nil {
		return nil, nil, fmt.Errorf("embed %d chunks: %w", len(texts), err)
	}
	rows := make([]chunkRow, 0, len(texts))
	for d, doc := range docs {
		for i := range doc.GetChunks() {
			k := len(rows)
			terms := textproc.Terms(indexed[k])
			tf := make(map[string]int, len(terms))
			for _, term := range terms {
				tf[term]++
			}
			md, _ := json.Marshal(inputs[k].GetMetadata().AsMap())
			rows = append(rows, chunkRow{id: fmt.Sprintf("%s:%d", ids[d], i), document: ids[d], text: texts[k], ordinal: i,
				metadata: md, terms: tf, length: len(terms), vector: vectors[k]})
		}
	}
	fenced, err := s.store.replaceDocuments(ctx, tenant, corpus, s.router.Embedder().Name(), ids, rows, versions)
	if errors.Is(err, errCorpusNotFound) {
		return nil, nil, apierr.NotFound("corpus", corpus)
	}
	if err != nil {
		return nil, nil, err
	}
	for d, id := range ids {
		if slices.Contains(fenced, id) {
			counts[d] = 0
		}
	}
	return counts, fenced, nil
}

// progressBatch is how many chunks are embedded between two progress reports when the
// embedder has no request size of its own.
const progressBatch = 500

// embedReporting embeds texts; with progress, a batch at a time (the embedder's own request size,
// when it has one: BatchSize), reporting after each. The write that follows is one
// transaction: a document is replaced atomically, so its write is never split.
func embedReporting(ctx context.Context, e Embedder, texts []string, progress func(embedded, total int) error) ([][]float32, error) {
	if progress == nil {
		return e.EmbedDocuments(ctx, texts)
	}
	size := progressBatch
	if b, ok := e.(interface{ BatchSize() int }); ok && b.BatchSize() > 0 {
		size = b.BatchSize()
	}
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += size {
		vectors, err := e.EmbedDocuments(ctx, texts[start:min(start+size, len(texts))])
		if err != nil {
			return nil, err
		}
		out = append(out, vectors...)
		if err := progress(len(out), len(texts)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func validateDocumentRef(tenant, corpus, document string) error {
	switch {
	case tenant == "":
		return apierr.InvalidArgument("tenant_id", "tenant_id is required on internal calls")
	case !corpusIDPattern.MatchString(corpus):
		return apierr.InvalidArgument("corpus_id", "corpus_id is not valid")
	case document == "" || len(document) > maxDocumentID:
		return apierr.InvalidArgument("document_id", fmt.Sprintf("document_id must be 1 to %d bytes", maxDocumentID))
	}
	return nil
}

// titleLine is a markdown level-1 heading opening a document: its title.
var titleLine = regexp.MustCompile(`\A#[ \t]+([^\n]+)`)

// documentTitle is the title a markdown document opens with, "" for none.
func documentTitle(first string) string {
	if m := titleLine.FindStringSubmatch(first); m != nil {
		return strings.TrimSpace(m[1])
	}
	return ""
}

// withTitle is what is indexed of a chunk: its text, after the document's title when the
// chunk does not hold it. A section chunk ("## Gate 2: reliability ...") is then found by
// what the document is about too, as its reader would understand it (a contextual chunk
// header); the stored and returned text stays the chunk's own.
func withTitle(title, text string) string {
	if title == "" || strings.Contains(text, title) {
		return text
	}
	return title + "\n\n" + text
}

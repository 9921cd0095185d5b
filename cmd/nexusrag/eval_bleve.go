package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/search/query"
	bleveindex "github.com/blevesearch/bleve_index_api"

	"github.com/nexusrag/nexusrag/pkg/ireval"
)

// The evaluation's peer is bleve, the search library Go users reach for: the platform's
// ranking is printed beside it, through the same metric code, on the same documents. It
// lives here, in the eval command, because it is a yardstick and not product code.

const bleveModule = "github.com/blevesearch/bleve/v2"

// bleveField is the one field of a bleve document: what the platform indexes of it
// (ireval.DocumentText).
const bleveField = "text"

// bleveIndex is an on-disk (scorch) bleve index of a collection's documents, in a
// temporary directory removed by close.
type bleveIndex struct {
	index bleve.Index
	dir   string
}

// newBleveIndex indexes docs with bleve's english analyzer (possessives, lower case, stop
// words, Porter stemming) under scoring (tf-idf, bleve's default, or bm25).
func newBleveIndex(docs []ireval.Record, scoring string) (*bleveIndex, error) {
	field := bleve.NewTextFieldMapping()
	field.Analyzer = en.AnalyzerName
	field.Store, field.IncludeTermVectors, field.IncludeInAll = false, false, false
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(bleveField, field)
	m := bleve.NewIndexMapping()
	m.DefaultMapping = doc
	m.DefaultAnalyzer = en.AnalyzerName
	m.DefaultField = bleveField
	m.ScoringModel = scoring
	dir, err := os.MkdirTemp("", "nexusrag-eval-bleve-")
	if err != nil {
		return nil, err
	}
	idx, err := bleve.New(dir+"/index", m)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("bleve index: %w", err)
	}
	b := &bleveIndex{index: idx, dir: dir}
	batch := idx.NewBatch()
	for _, d := range docs {
		text := ireval.DocumentText(d)
		if strings.TrimSpace(text) == "" {
			continue
		}
		if err := batch.Index(d.ID, map[string]any{bleveField: text}); err != nil {
			b.close()
			return nil, fmt.Errorf("bleve document %s: %w", d.ID, err)
		}
	}
	if err := idx.Batch(batch); err != nil {
		b.close()
		return nil, fmt.Errorf("bleve index: %w", err)
	}
	return b, nil
}

// search is an OR match query over the indexed field: every analyzed query token is a
// term clause (repeated tokens repeat their clause, as bleve does).
func (b *bleveIndex) search(depth int) ireval.SearchFunc {
	return func(ctx context.Context, text string) ([]string, error) {
		q := bleve.NewMatchQuery(text)
		q.SetField(bleveField)
		q.SetOperator(query.MatchQueryOperatorOr)
		req := bleve.NewSearchRequestOptions(q, depth, 0, false)
		res, err := b.index.SearchInContext(ctx, req)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(res.Hits))
		for i, h := range res.Hits {
			ids[i] = h.ID
		}
		return ids, nil
	}
}

func (b *bleveIndex) close() {
	_ = b.index.Close()
	_ = os.RemoveAll(b.dir)
}

// bleveVersion is the bleve module version built in, for the report.
func bleveVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == bleveModule {
				return d.Version
			}
		}
	}
	return "v2"
}

// bleveScorings are the peer's rows: its default scoring and BM25.
var bleveScorings = []string{bleveindex.TFIDFScoring, bleveindex.BM25Scoring}

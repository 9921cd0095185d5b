package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/ireval"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/ingest"
)

func evalCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "eval", Short: "Measure quality on a test collection"}
	cmd.AddCommand(evalRetrievalCmd())
	return cmd
}

type evalOptions struct {
	docs, queries, qrels string
	k                    int
	tenant               string
	chunkings            []string
	bleve                bool
	keep                 bool
	concurrency          int
	ingestTimeout        time.Duration
}

func evalRetrievalCmd() *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "retrieval --docs F --queries F --qrels F [--k 10] [--chunking default,2000/200] [--bleve]",
		Short: "Load a SMART-format test collection through ingestion, run every judged query through Retrieve, print nDCG, Recall and MRR beside bleve's",
		Long: `eval retrieval loads the documents of a test collection in the SMART format (.I id,
then .T title, .W text, ...; judgements as "<query id> <doc id> ..." lines) into a fresh
corpus through the real ingestion pipeline (CreateDocument, the Redis stream, the worker),
once per --chunking ("default" is what a document gets without chunking settings; SIZE/OVERLAP
in characters), runs every query that has judgements through Retrieve, and prints one row per
ranker: nDCG@k, Recall@k, MRR and query latency p50/p99. With --bleve (the default) the same
documents are also indexed in-process by bleve (english analyzer, an OR match query) and
ranked through the same metric code, as a peer. Documents are ranked by their best chunk.
The corpora are emptied afterwards unless --keep. Document ids are prefixed with the corpus
id, so runs never collide.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return evalRetrieval(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.docs, "docs", "", "documents file (required)")
	f.StringVar(&o.queries, "queries", "", "queries file (required)")
	f.StringVar(&o.qrels, "qrels", "", "relevance judgements file (required)")
	f.IntVar(&o.k, "k", 10, "cut-off of nDCG and Recall, 1..50")
	f.StringVar(&o.tenant, "tenant", "eval", "tenant that owns the evaluation corpora")
	f.StringSliceVar(&o.chunkings, "chunking", []string{"default"}, `chunkings to evaluate, one platform row each: "default" or SIZE/OVERLAP in characters`)
	f.BoolVar(&o.bleve, "bleve", true, "add bleve's rows (english analyzer, OR match query; tf-idf and bm25 scoring)")
	f.BoolVar(&o.keep, "keep", false, "keep the corpora and their documents afterwards")
	f.IntVar(&o.concurrency, "concurrency", 8, "documents uploaded at once")
	f.DurationVar(&o.ingestTimeout, "ingest-timeout", 10*time.Minute, "longest wait for ingestion")
	for _, name := range []string{"docs", "queries", "qrels"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// retrieveDepth is how many chunks each query asks for: documents are ranked by their
// best chunk, so asking for more than k leaves room for several chunks per document.
const retrieveDepth = 50

// chunking is one platform row's chunk settings; zero values mean the ingestion defaults.
type chunking struct{ size, overlap int }

func parseChunking(s string) (chunking, error) {
	if s == "default" {
		return chunking{}, nil
	}
	var c chunking
	if _, err := fmt.Sscanf(s, "%d/%d", &c.size, &c.overlap); err != nil || c.size <= 0 || c.overlap < 0 || c.overlap >= c.size {
		return c, fmt.Errorf("--chunking %q: want default or SIZE/OVERLAP with 0 <= OVERLAP < SIZE", s)
	}
	return c, nil
}

func (c chunking) String() string {
	if c.size == 0 {
		return fmt.Sprintf("default chunks (%d/%d)", ingest.DefaultChunkSize, ingest.DefaultChunkOverlap)
	}
	return fmt.Sprintf("%d/%d chunks", c.size, c.overlap)
}

// evalRow is one ranker's line of the report.
type evalRow struct {
	name string
	rep  ireval.Report
}

func evalRetrieval(ctx context.Context, o evalOptions) error {
	if o.k < 1 || o.k > retrieveDepth {
		return fmt.Errorf("--k must be 1 to %d", retrieveDepth)
	}
	var chunkings []chunking
	for _, s := range o.chunkings {
		c, err := parseChunking(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		chunkings = append(chunkings, c)
	}
	docs, err := readRecords(o.docs)
	if err != nil {
		return err
	}
	queries, err := readRecords(o.queries)
	if err != nil {
		return err
	}
	qrels, err := readQrels(o.qrels)
	if err != nil {
		return err
	}
	var rows []evalRow
	if len(chunkings) > 0 {
		p, err := openPipeline(ctx)
		if err != nil {
			return err
		}
		defer p.close()
		for _, c := range chunkings {
			rep, err := evalPlatform(ctx, p, o, c, docs, queries, qrels)
			if err != nil {
				return err
			}
			rows = append(rows, evalRow{"platform, " + c.String(), rep})
		}
	}
	if o.bleve {
		for _, scoring := range bleveScorings {
			rep, err := evalBleve(ctx, docs, queries, qrels, scoring, o.k)
			if err != nil {
				return err
			}
			rows = append(rows, evalRow{fmt.Sprintf("bleve %s, english, OR match, %s", bleveVersion(), scoring), rep})
		}
	}
	printEvalRows(os.Stdout, rows)
	return nil
}

// evalPlatform loads docs into a fresh corpus chunked as c, and ranks the queries through Retrieve.
func evalPlatform(ctx context.Context, p *pipeline, o evalOptions, c chunking, docs, queries []ireval.Record, qrels ireval.Qrels) (ireval.Report, error) {
	as := principal.With(ctx, principal.Principal{TenantID: o.tenant, KeyID: "eval", Role: apiv1.Role_ROLE_EDITOR})
	corpus := fmt.Sprintf("eval-%d", time.Now().UnixNano())
	if _, err := p.retrieval.UpdateCorpus(as, &retrievalv1.UpdateCorpusRequest{CorpusId: corpus, AllowMissing: true}); err != nil {
		return ireval.Report{}, fmt.Errorf("create corpus %s: %w", corpus, err)
	}
	if !o.keep {
		defer func() {
			if err := deleteCorpusDocuments(context.WithoutCancel(as), p, corpus, docs, o.concurrency); err != nil {
				fmt.Fprintf(os.Stderr, "clean-up of corpus %s: %v\n", corpus, err)
			}
		}()
	}
	fmt.Printf("ingesting %d documents into %s/%s (%s)\n", len(docs), o.tenant, corpus, c)
	start := time.Now()
	g, gctx := errgroup.WithContext(as)
	g.SetLimit(o.concurrency)
	for _, d := range docs {
		text := ireval.DocumentText(d)
		if strings.TrimSpace(text) == "" {
			continue
		}
		g.Go(func() error {
			_, err := p.ingest.CreateDocument(gctx, &ingestv1.CreateDocumentRequest{CorpusId: corpus, DocumentId: corpus + "-" + d.ID, Text: text,
				ChunkSizeChars: int32(c.size), ChunkOverlapChars: int32(c.overlap)})
			if err != nil {
				return fmt.Errorf("document %s: %w", d.ID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return ireval.Report{}, err
	}
	n, chunks, err := p.waitIngested(as, corpus, o.ingestTimeout)
	if err != nil {
		return ireval.Report{}, err
	}
	ingestTime := time.Since(start)
	fmt.Printf("ingested %d documents, %d chunks in %s (%.0f chunks/s)\n", n, chunks, ingestTime.Round(time.Millisecond), float64(chunks)/ingestTime.Seconds())

	search := func(ctx context.Context, query string) ([]string, error) {
		res, err := p.retrieval.Retrieve(as, &retrievalv1.RetrieveRequest{CorpusId: corpus, Query: truncateQuery(query), TopK: retrieveDepth})
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(res.GetChunks()))
		for i, c := range res.GetChunks() {
			ids[i] = strings.TrimPrefix(c.GetDocumentId(), corpus+"-")
		}
		return ids, nil
	}
	return ireval.Evaluate(ctx, queries, qrels, search, o.k)
}

// evalBleve indexes docs in bleve and ranks the queries there.
func evalBleve(ctx context.Context, docs, queries []ireval.Record, qrels ireval.Qrels, scoring string, k int) (ireval.Report, error) {
	start := time.Now()
	b, err := newBleveIndex(docs, scoring)
	if err != nil {
		return ireval.Report{}, err
	}
	defer b.close()
	fmt.Printf("bleve (%s) indexed %d documents in %s\n", scoring, len(docs), time.Since(start).Round(time.Millisecond))
	return ireval.Evaluate(ctx, queries, qrels, b.search(retrieveDepth), k)
}

// printEvalRows prints the report: one line per ranker.
func printEvalRows(w io.Writer, rows []evalRow) {
	if len(rows) == 0 {
		return
	}
	k := rows[0].rep.K
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "ranker\tqueries\tnDCG@%d\tRecall@%d\tMRR\tp50 ms\tp99 ms\n", k, k)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%.2f\t%.2f\n", r.name, r.rep.Queries, r.rep.NDCG, r.rep.Recall, r.rep.MRR,
			msFloat(r.rep.P50), msFloat(r.rep.P99))
	}
	_ = tw.Flush()
}

func msFloat(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func readRecords(path string) ([]ireval.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := ireval.ReadRecords(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: no records (want the SMART format: .I <id> lines)", path)
	}
	return recs, nil
}

func readQrels(path string) (ireval.Qrels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	qrels, err := ireval.ReadQrels(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return qrels, nil
}

// truncateQuery keeps a query within Retrieve's limit (some test collections hold long ones).
func truncateQuery(q string) string {
	const limit = 4096
	if r := []rune(q); len(r) > limit {
		return string(r[:limit])
	}
	return q
}

// deleteCorpusDocuments removes the evaluation documents and their chunks.
func deleteCorpusDocuments(ctx context.Context, p *pipeline, corpus string, docs []ireval.Record, concurrency int) error {
	var mu sync.Mutex
	var failed []error
	g := errgroup.Group{}
	g.SetLimit(concurrency)
	for _, d := range docs {
		g.Go(func() error {
			_, err := p.ingest.DeleteDocument(ctx, &ingestv1.DeleteDocumentRequest{DocumentId: corpus + "-" + d.ID})
			if err != nil && status.Code(err) != codes.NotFound {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(failed) > 0 {
		return fmt.Errorf("%d documents of %s not deleted: %w", len(failed), corpus, failed[0])
	}
	return nil
}

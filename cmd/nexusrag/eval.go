package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
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
	chunkSize, overlap   int
	keep                 bool
	concurrency          int
	ingestTimeout        time.Duration
}

func evalRetrievalCmd() *cobra.Command {
	var o evalOptions
	cmd := &cobra.Command{
		Use:   "retrieval --docs F --queries F --qrels F [--k 10]",
		Short: "Load a SMART-format test collection through ingestion, run every judged query through Retrieve, print nDCG, Recall and MRR",
		Long: `eval retrieval loads the documents of a test collection in the SMART format (.I id,
then .T title, .W text, ...; judgements as "<query id> <doc id> ..." lines) into a fresh
corpus through the real ingestion pipeline (CreateDocument, the Redis stream, the worker),
runs every query that has judgements through Retrieve, and prints nDCG@k, Recall@k, MRR,
the number of queries and timings. Documents are ranked by their best chunk. The corpus
is emptied afterwards unless --keep. Document ids are prefixed with the corpus id, so
runs never collide.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return evalRetrieval(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.docs, "docs", "", "documents file (required)")
	f.StringVar(&o.queries, "queries", "", "queries file (required)")
	f.StringVar(&o.qrels, "qrels", "", "relevance judgements file (required)")
	f.IntVar(&o.k, "k", 10, "cut-off of nDCG and Recall, 1..50")
	f.StringVar(&o.tenant, "tenant", "eval", "tenant that owns the evaluation corpus")
	f.IntVar(&o.chunkSize, "chunk-size", ingest.DefaultChunkSize, "chunk_size_chars of every document")
	f.IntVar(&o.overlap, "chunk-overlap", ingest.DefaultChunkOverlap, "chunk_overlap_chars of every document")
	f.BoolVar(&o.keep, "keep", false, "keep the corpus and its documents afterwards")
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

func evalRetrieval(ctx context.Context, o evalOptions) error {
	if o.k < 1 || o.k > retrieveDepth {
		return fmt.Errorf("--k must be 1 to %d", retrieveDepth)
	}
	docs, err := readRecords(o.docs)
	if err != nil {
		return err
	}
	queries, err := readRecords(o.queries)
	if err != nil {
		return err
	}
	qf, err := os.Open(o.qrels)
	if err != nil {
		return err
	}
	qrels, err := ireval.ReadQrels(qf)
	_ = qf.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", o.qrels, err)
	}
	p, err := openPipeline(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	as := principal.With(ctx, principal.Principal{TenantID: o.tenant, KeyID: "eval", Role: apiv1.Role_ROLE_EDITOR})
	corpus := fmt.Sprintf("eval-%d", time.Now().UnixMilli())
	if _, err := p.retrieval.UpdateCorpus(as, &retrievalv1.UpdateCorpusRequest{CorpusId: corpus, AllowMissing: true}); err != nil {
		return fmt.Errorf("create corpus %s: %w", corpus, err)
	}
	if !o.keep {
		defer func() {
			if err := deleteCorpusDocuments(context.WithoutCancel(as), p, corpus, docs, o.concurrency); err != nil {
				fmt.Fprintf(os.Stderr, "clean-up of corpus %s: %v\n", corpus, err)
			}
		}()
	}

	fmt.Printf("ingesting %d documents into %s/%s (chunks of %d characters, overlap %d)\n", len(docs), o.tenant, corpus, o.chunkSize, o.overlap)
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
				ChunkSizeChars: int32(o.chunkSize), ChunkOverlapChars: int32(o.overlap)})
			if err != nil {
				return fmt.Errorf("document %s: %w", d.ID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	n, chunks, err := p.waitIngested(as, corpus, o.ingestTimeout)
	if err != nil {
		return err
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
	rep, err := ireval.Evaluate(ctx, queries, qrels, search, o.k)
	if err != nil {
		return err
	}
	fmt.Printf("\nqueries %d   nDCG@%d %.4f   Recall@%d %.4f   MRR %.4f\n", rep.Queries, rep.K, rep.NDCG, rep.K, rep.Recall, rep.MRR)
	fmt.Printf("retrieve latency: p50 %s   p99 %s   max %s\n", ms(rep.P50), ms(rep.P99), ms(rep.Max))
	return nil
}

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

// truncateQuery keeps a query within Retrieve's limit (some test collections hold long ones).
func truncateQuery(q string) string {
	const limit = 4096
	if r := []rune(q); len(r) > limit {
		return string(r[:limit])
	}
	return q
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

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

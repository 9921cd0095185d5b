package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"golang.org/x/sync/errgroup"

	"github.com/nexusrag/nexusrag/internal/launch"
	"github.com/nexusrag/nexusrag/pkg/textproc"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

const (
	ingestDocs    = 2000
	ingestCorpus  = "bench-ingest"
	rawCorpus     = "bench-ingest-raw"
	ingestTimeout = 5 * time.Minute
)

// ingestSuite: 2,000 documents through POST /v1/documents/text until every one is
// succeeded (chunking, embedding, chunk and index log writes, status updates),
// beside a raw COPY of the same chunk rows into retrieval.chunks.
func ingestSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	docs := newProse(11).corpus(ingestDocs)
	key, err := createKey(env, "editor")
	if err != nil {
		return nil, err
	}
	api := launch.NewAPI(env.httpURL, key, env.clients)
	defer api.HTTP.CloseIdleConnections()
	sctx, stopSampling := context.WithCancel(ctx)
	var peakRSS int64
	var sampler sync.WaitGroup
	sampler.Go(func() { peakRSS = launch.PeakRSS(sctx, env.serve.Cmd.Process.Pid) })
	e2e, err := ingestEndToEnd(ctx, api, docs, env.clients)
	stopSampling()
	sampler.Wait()
	if err != nil {
		return nil, fmt.Errorf("ingest end to end: %w", err)
	}
	raw, err := copyChunks(ctx, env.DBURL, docs)
	if err != nil {
		return nil, fmt.Errorf("raw copy of chunks: %w", err)
	}
	e2eRate := float64(e2e.chunks) / e2e.wall.Seconds()
	rawRate := float64(raw.chunks) / raw.copy.Seconds()
	return []row{
		{name: "ingest: 2,000 docs, POST /v1/documents/text to succeeded", p50: ms(e2e.post.quantile(.5)), p99: ms(e2e.post.quantile(.99)),
			rate: fmt.Sprintf("%.0f chunks/s", e2eRate),
			note: fmt.Sprintf("%d chunks, %.0f docs/s, %s wall (POSTs %s); latency is POST's; serving RSS peak %s; aim: at least 1,000 chunks/s",
				e2e.chunks, float64(ingestDocs)/e2e.wall.Seconds(), e2e.wall.Round(10*time.Millisecond), e2e.post.elapsed.Round(10*time.Millisecond), mib(peakRSS))},
		{name: "baseline: raw CopyFrom of the same chunk rows", p50: "-", p99: "-", rate: fmt.Sprintf("%.0f chunks/s", rawRate),
			note: fmt.Sprintf("%d rows (terms included) into retrieval.chunks and its indexes, nothing else; chunk+embed %s not counted; end-to-end/raw %s; aim: at least 0.8x",
				raw.chunks, raw.prepare.Round(10*time.Millisecond), ratio(e2eRate, rawRate))},
	}, nil
}

// createKey makes an API key of role for the bench tenant; the running gateway looks a
// key it has not synced yet up on first use.
func createKey(env *benchEnv, role string) (string, error) {
	return createTenantKey(env, "bench", role)
}

// createTenantKey makes an API key of role for tenant, whose quotas no run reaches.
func createTenantKey(env *benchEnv, tenant, role string) (string, error) {
	if err := env.Unmetered(tenant); err != nil {
		return "", err
	}
	return env.CreateKey(tenant, role, "bench-"+role)
}

type e2eResult struct {
	post   result // POST latencies, elapsed from the first POST to the last answer
	chunks int
	wall   time.Duration // first POST to the last finished_at
}

// ingestEndToEnd creates the corpus, POSTs every document from n clients, and waits
// until all of them are succeeded.
func ingestEndToEnd(ctx context.Context, api launch.API, docs []string, n int) (e2eResult, error) {
	var out e2eResult
	if err := api.Call(ctx, http.MethodPatch, "/v1/corpora/"+ingestCorpus, map[string]any{"allow_missing": true}, nil); err != nil {
		return out, err
	}
	next := make(chan int)
	lat := make([][]time.Duration, n)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for i := range docs {
			select {
			case next <- i:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for c := range n {
		g.Go(func() error {
			for i := range next {
				t := time.Now()
				body := map[string]any{"corpus_id": ingestCorpus, "text": docs[i], "document_id": docID(i), "filename": docID(i) + ".txt"}
				if err := api.Call(gctx, http.MethodPost, "/v1/documents/text", body, nil); err != nil {
					return err
				}
				lat[c] = append(lat[c], time.Since(t))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return out, err
	}
	out.post.elapsed = time.Since(start)
	out.post.latencies = slices.Concat(lat...)
	slices.Sort(out.post.latencies)
	chunks, last, err := waitSucceeded(ctx, api, len(docs))
	if err != nil {
		return out, err
	}
	if last.Before(start) {
		return out, fmt.Errorf("the last finished_at (%s) is before the first POST (%s)", last, start)
	}
	out.chunks, out.wall = chunks, last.Sub(start)
	return out, nil
}

func docID(i int) string { return fmt.Sprintf("doc-%04d", i) }

// document is the part of a document's status the bench reads.
type document struct {
	DocumentID    string    `json:"document_id"`
	Status        string    `json:"status"`
	FailureReason string    `json:"failure_reason"`
	ChunkCount    int       `json:"chunk_count"`
	FinishedAt    time.Time `json:"finished_at"`
}

type documentPage struct {
	Documents     []document `json:"documents"`
	NextPageToken string     `json:"next_page_token"`
}

// waitSucceeded polls until no document of the corpus is queued or processing (two
// one-row listings per poll), then lists them all to check that want succeeded; it
// returns their chunks and the latest finished_at. A failed document fails the bench.
func waitSucceeded(ctx context.Context, api launch.API, want int) (int, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, ingestTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		busy, err := anyWithStatus(ctx, api, "failed", "queued", "processing")
		if err != nil {
			return 0, time.Time{}, err
		}
		if busy == nil {
			chunks, last, done, err := allSucceeded(ctx, api, want)
			if err != nil || done {
				return chunks, last, err
			}
		} else if busy.Status == "failed" {
			return 0, time.Time{}, fmt.Errorf("document %s failed: %s", busy.DocumentID, busy.FailureReason)
		}
		select {
		case <-ctx.Done():
			return 0, time.Time{}, fmt.Errorf("documents not all succeeded within %s: %w", ingestTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// anyWithStatus returns a document of the corpus in the first of statuses that has one.
func anyWithStatus(ctx context.Context, api launch.API, statuses ...string) (*document, error) {
	for _, s := range statuses {
		var page documentPage
		q := url.Values{"corpus_id": {ingestCorpus}, "status": {s}, "page_size": {"1"}}
		if err := api.Call(ctx, http.MethodGet, "/v1/documents?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		if len(page.Documents) > 0 {
			return &page.Documents[0], nil
		}
	}
	return nil, nil
}

// allSucceeded lists the corpus's documents; done reports whether want are succeeded.
func allSucceeded(ctx context.Context, api launch.API, want int) (chunks int, last time.Time, done bool, err error) {
	seen, token := 0, ""
	for {
		var page documentPage
		q := url.Values{"corpus_id": {ingestCorpus}, "page_size": {"200"}}
		if token != "" {
			q.Set("page_token", token)
		}
		if err := api.Call(ctx, http.MethodGet, "/v1/documents?"+q.Encode(), nil, &page); err != nil {
			return 0, last, false, err
		}
		for _, d := range page.Documents {
			switch d.Status {
			case "succeeded":
			case "failed":
				return 0, last, false, fmt.Errorf("document %s failed: %s", d.DocumentID, d.FailureReason)
			default:
				return 0, last, false, nil
			}
			seen++
			chunks += d.ChunkCount
			if d.FinishedAt.After(last) {
				last = d.FinishedAt
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if seen != want {
		return 0, last, false, fmt.Errorf("corpus %s lists %d documents, want %d", ingestCorpus, seen, want)
	}
	return chunks, last, true, nil
}

type rawResult struct {
	chunks  int
	prepare time.Duration // chunking, embedding and counting terms
	copy    time.Duration
}

// copyChunks writes the chunk rows the worker would write for docs (same chunking,
// embedder, ids and metadata) into retrieval.chunks of another corpus with one COPY.
func copyChunks(ctx context.Context, dbURL string, docs []string) (rawResult, error) {
	var out rawResult
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return out, err
	}
	defer conn.Close(ctx)
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		return out, err
	}
	emb := retrieval.NewHashEmbedder(retrieval.DefaultDim)
	// chunks has a foreign key to corpora.
	if _, err := conn.Exec(ctx, `INSERT INTO retrieval.corpora (tenant_id, corpus_id, name, provider_config, embedder, embedding_dim)
		VALUES ('bench', $1, 'bench raw', '{"retrieval":{"provider":"local_pgvector","top_k_default":5}}', $2, $3)`,
		rawCorpus, emb.Name(), emb.Dim()); err != nil {
		return out, fmt.Errorf("create corpus %s: %w", rawCorpus, err)
	}
	start := time.Now()
	var rows [][]any
	for i, d := range docs {
		texts := ingest.Chunk(d, ingest.ChunkOptions{Size: ingest.DefaultChunkSize, Overlap: ingest.DefaultChunkOverlap})
		vecs, err := emb.EmbedDocuments(ctx, texts)
		if err != nil {
			return out, err
		}
		meta, _ := json.Marshal(map[string]string{"content_type": "text/plain", "filename": docID(i) + ".txt"})
		for k, t := range texts {
			words := textproc.Terms(t)
			tf := map[string]int{}
			for _, w := range words {
				tf[w]++
			}
			terms, freqs := termLists(tf)
			rows = append(rows, []any{"bench", rawCorpus, fmt.Sprintf("%s:%d", docID(i), k), docID(i), k, t, meta,
				len(words), emb.Dim(), pgvector.NewVector(vecs[k]), terms, freqs})
		}
	}
	out.prepare = time.Since(start)
	start = time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"retrieval", "chunks"},
		[]string{"tenant_id", "corpus_id", "chunk_id", "document_id", "ordinal", "text", "metadata", "term_count", "embedding_dim", "embedding", "terms", "term_freqs"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return out, err
	}
	out.copy, out.chunks = time.Since(start), int(n)
	return out, nil
}

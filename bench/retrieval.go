package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/internal/launch"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/textproc"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

const (
	benchChunks  = 100_000
	benchTopics  = 400
	benchQueries = 400
)

// retrievalSuite: local_pgvector top-5 over a 100k-chunk corpus, short queries (4-8
// terms) and long ones (30-40 terms, like CISI's), each from env.clients concurrent
// clients through the gRPC API of the running binary, beside the same search run
// in-process with pgx on a pool of the binary's default size (DB_MAX_CONNS 16).
func retrievalSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	loadStart := time.Now()
	if err := loadSyntheticCorpus(ctx, env.DBURL); err != nil {
		return nil, fmt.Errorf("load synthetic corpus: %w", err)
	}
	loadTime := time.Since(loadStart)

	conn, err := grpcx.Dial(env.grpcAddr, grpcx.ClientOptions{Tokens: env.Tokens})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := retrievalv1.NewRetrievalServiceClient(conn)
	callCtx := principal.With(ctx, principal.Principal{TenantID: "bench", Role: apiv1.Role_ROLE_READER})
	viaGRPC := func(q string) (int, error) {
		res, err := client.Retrieve(callCtx, &retrievalv1.RetrieveRequest{CorpusId: "bench-100k", Query: q, TopK: 5})
		return len(res.GetChunks()), err
	}
	pool, err := pgstore.Connect(ctx, env.DBURL, pgstore.Options{MaxConns: 16, RuntimeParams: retrieval.SessionParams()})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	local := retrieval.NewLocalIndex(retrieval.NewStore(pool), retrieval.NewHashEmbedder(retrieval.DefaultDim))
	direct := func(q string) (int, error) {
		return local.Search(ctx, "bench", "bench-100k", q, 5)
	}

	pid := env.serve.Cmd.Process.Pid
	rssBefore, err := launch.ReadRSS(pid)
	if err != nil {
		return nil, err
	}
	var rows []row
	for _, set := range []struct {
		name     string
		min, max int
	}{{"short queries (4-8 terms)", 4, 8}, {"long queries (30-40 terms)", 30, 40}} {
		queries := syntheticQueries(benchQueries, set.min, set.max)
		g, err := timeQueries(queries, env.clients, viaGRPC)
		if err != nil {
			return nil, err
		}
		d, err := timeQueries(queries, env.clients, direct)
		if err != nil {
			return nil, err
		}
		rows = append(rows,
			row{name: "retrieval: Retrieve top-5, 100k chunks (gRPC), " + set.name, p50: ms(g.quantile(.5)), p99: ms(g.quantile(.99)),
				rate: fmt.Sprintf("%.0f q/s", g.rate()),
				note: fmt.Sprintf("%d queries, %d clients, %.1f hits avg; aim: p50 <= 5 ms, p99 <= 20 ms", len(g.latencies), env.clients, g.hitsAvg)},
			row{name: "baseline: same search in-process with pgx", p50: ms(d.quantile(.5)), p99: ms(d.quantile(.99)),
				rate: fmt.Sprintf("%.0f q/s", d.rate()), note: fmt.Sprintf("%d clients; corpus loaded with COPY + HNSW build in %s", env.clients, loadTime.Round(time.Second))},
			row{name: "ratio gRPC / in-process", p50: ratio(float64(g.quantile(.5)), float64(d.quantile(.5))),
				p99: ratio(float64(g.quantile(.99)), float64(d.quantile(.99))), rate: ratio(g.rate(), d.rate()), note: "aim: at most 1.5x"})
	}
	rssAfter, err := launch.ReadRSS(pid)
	if err != nil {
		return nil, err
	}
	size, err := chunkIndexSize(ctx, pool)
	if err != nil {
		return nil, err
	}
	return append(rows, row{name: "memory: 100k chunks on disk and in the serving process", p50: "-", p99: "-", rate: "-",
		note: fmt.Sprintf("%s; serving RSS %s before the first query, %s after (the in-memory lexical index and its load)",
			size, mib(rssBefore), mib(rssAfter))}), nil
}

// chunkIndexSize describes retrieval.chunks on disk: heap (with TOAST) and each index.
func chunkIndexSize(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var heap, indexes, hnsw int64
	err := pool.QueryRow(ctx, `SELECT pg_table_size('retrieval.chunks'), pg_indexes_size('retrieval.chunks'),
		pg_relation_size('retrieval.chunks_embedding_384_idx')`).Scan(&heap, &indexes, &hnsw)
	if err != nil {
		return "", fmt.Errorf("size of the chunk index: %w", err)
	}
	return fmt.Sprintf("retrieval.chunks %s (rows %s, indexes %s of which HNSW %s)", mib(heap+indexes), mib(heap), mib(indexes), mib(hnsw)), nil
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

type queryTimes struct {
	result
	hitsAvg float64
}

// timeQueries runs each query once from `clients` concurrent clients, after a warm-up: one
// query alone (a corpus's first search loads its index), then the first 100 from all the
// clients (each database connection's first statements pay for its session: prepared
// statements, catalog caches; a service's pool is warm after its first seconds).
func timeQueries(queries []string, clients int, run func(string) (int, error)) (queryTimes, error) {
	if _, err := run(queries[0]); err != nil {
		return queryTimes{}, err
	}
	if _, err := runQueries(queries[:100], clients, run); err != nil {
		return queryTimes{}, err
	}
	return runQueries(queries, clients, run)
}

func runQueries(queries []string, clients int, run func(string) (int, error)) (queryTimes, error) {
	var (
		out   queryTimes
		mu    sync.Mutex
		hits  int
		first error
		wg    sync.WaitGroup
	)
	next := make(chan string)
	start := time.Now()
	for range max(1, clients) {
		wg.Go(func() {
			for q := range next {
				t := time.Now()
				n, err := run(q)
				d := time.Since(t)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				out.latencies = append(out.latencies, d)
				hits += n
				mu.Unlock()
			}
		})
	}
	for _, q := range queries {
		next <- q
	}
	close(next)
	wg.Wait()
	out.elapsed = time.Since(start)
	out.hitsAvg = float64(hits) / float64(len(queries))
	slices.Sort(out.latencies)
	return out, first
}

// vocabulary: pseudo-words, so that topics are separable and the data is not uniform noise.
func vocabulary(n int, rng *rand.Rand) []string {
	syll := []string{"ka", "ro", "mi", "te", "lu", "sa", "no", "vi", "pe", "da", "go", "ri", "zu", "fe", "ha", "lo"}
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		var b strings.Builder
		for range 2 + rng.IntN(3) {
			b.WriteString(syll[rng.IntN(len(syll))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

type synth struct {
	common []string
	topics [][]string
}

func newSynth() synth {
	rng := rand.New(rand.NewPCG(42, 7))
	words := vocabulary(200+benchTopics*25, rng)
	s := synth{common: words[:200]}
	for i := range benchTopics {
		s.topics = append(s.topics, words[200+i*25:200+(i+1)*25])
	}
	return s
}

func (s synth) text(rng *rand.Rand, topic, n int) string {
	w := make([]string, n)
	for i := range w {
		if rng.Float64() < 0.7 {
			w[i] = s.topics[topic][rng.IntN(len(s.topics[topic]))]
		} else {
			w[i] = s.common[rng.IntN(len(s.common))]
		}
	}
	return strings.Join(w, " ")
}

// syntheticQueries makes n queries of minTerms to maxTerms words, each about one topic.
func syntheticQueries(n, minTerms, maxTerms int) []string {
	s, rng := newSynth(), rand.New(rand.NewPCG(9, 9))
	out := make([]string, n)
	for i := range out {
		out[i] = s.text(rng, rng.IntN(benchTopics), minTerms+rng.IntN(maxTerms-minTerms+1))
	}
	return out
}

// loadSyntheticCorpus writes the corpus straight into the retrieval schema with COPY,
// computing terms and vectors as UpsertChunks would, builds the HNSW index after the
// rows are in and vacuums (as one would after any bulk load; autovacuum would otherwise
// work through the table and its HNSW index while the queries are timed).
func loadSyntheticCorpus(ctx context.Context, dbURL string) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := pgxvec.RegisterTypes(ctx, conn); err != nil {
		return err
	}
	s := newSynth()
	emb := retrieval.NewHashEmbedder(retrieval.DefaultDim)
	type prepared struct {
		text   string
		vec    []float32
		tf     map[string]int
		length int
	}
	chunks := make([]prepared, benchChunks)
	var wg sync.WaitGroup
	workers := 4
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < benchChunks; i += workers {
				text := s.text(rng, i%benchTopics, 40+rng.IntN(40))
				v, _ := emb.EmbedDocuments(ctx, []string{text})
				terms := textproc.Terms(text)
				tf := map[string]int{}
				for _, t := range terms {
					tf[t]++
				}
				chunks[i] = prepared{text: text, vec: v[0], tf: tf, length: len(terms)}
			}
		})
	}
	wg.Wait()
	var total int64
	for _, c := range chunks {
		total += int64(c.length)
	}
	for _, stmt := range []string{
		`SET maintenance_work_mem = '1GB'`,
		`DROP INDEX IF EXISTS retrieval.chunks_embedding_384_idx`,
		fmt.Sprintf(`INSERT INTO retrieval.corpora (tenant_id, corpus_id, name, provider_config, embedder, embedding_dim, chunk_count, term_total)
			VALUES ('bench', 'bench-100k', 'bench', '{"retrieval":{"provider":"local_pgvector","top_k_default":5}}', '%s', %d, %d, %d)`,
			emb.Name(), emb.Dim(), benchChunks, total),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	i := 0
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"retrieval", "chunks"},
		[]string{"tenant_id", "corpus_id", "chunk_id", "document_id", "ordinal", "text", "term_count", "embedding_dim", "embedding", "terms", "term_freqs", "vector_indexed"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(chunks) {
				return nil, nil
			}
			c := chunks[i]
			doc := fmt.Sprintf("doc-%d", i)
			i++
			terms, freqs := termLists(c.tf)
			return []any{"bench", "bench-100k", doc + ":0", doc, 0, c.text, c.length, emb.Dim(), pgvector.NewVector(c.vec), terms, freqs, true}, nil
		})); err != nil {
		return fmt.Errorf("copy chunks: %w", err)
	}
	for _, stmt := range []string{
		`CREATE INDEX chunks_embedding_384_idx ON retrieval.chunks USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384 AND vector_indexed`,
		`VACUUM (ANALYZE) retrieval.chunks, retrieval.corpora`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}

// termLists are a chunk's distinct terms, sorted, and their frequencies: its terms and
// term_freqs columns.
func termLists(tf map[string]int) ([]string, []int32) {
	terms := make([]string, 0, len(tf))
	for t := range tf {
		terms = append(terms, t)
	}
	slices.Sort(terms)
	freqs := make([]int32, len(terms))
	for i, t := range terms {
		freqs[i] = int32(tf[t])
	}
	return terms, freqs
}

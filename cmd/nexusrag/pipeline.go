package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// pipeline is the retrieval and ingest services run inside an operator command (seed-demo,
// eval): the same servers, queue and worker as `serve`, over DATABASE_URL and REDIS_URL,
// called through gRPC. Documents go the real way: CreateDocument, the Redis stream, the
// worker, UpsertDocuments. A running platform's workers may take some of the jobs; that
// is fine, they do the same.
type pipeline struct {
	retrieval retrievalv1.RetrievalServiceClient
	ingest    ingestv1.IngestServiceClient
	stops     []func()
}

// openPipeline starts the pipeline from the environment's configuration.
func openPipeline(ctx context.Context) (*pipeline, error) {
	cfg, log, err := loadPlatform(os.Stderr)
	if err != nil {
		return nil, err
	}
	return startPipeline(ctx, cfg, log)
}

func startPipeline(ctx context.Context, cfg platformConfig, log *slog.Logger) (p *pipeline, err error) {
	p = &pipeline{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	rcfg, err := config.Parse[retrieval.Config](nil)
	if err != nil {
		return p, err
	}
	icfg, err := config.Parse[ingest.Config](nil)
	if err != nil {
		return p, err
	}
	embedder, err := retrieval.NewEmbedder(ctx, rcfg)
	if err != nil {
		return p, fmt.Errorf("EMBEDDINGS_PROVIDER=%s: %w", rcfg.EmbeddingsProvider, err)
	}
	pool, err := pgstore.Connect(ctx, cfg.DatabaseURL, pgstore.Options{Application: "nexusrag-cli", MaxConns: 8, RuntimeParams: retrieval.SessionParams()})
	if err != nil {
		return p, fmt.Errorf("DATABASE_URL: %w", err)
	}
	p.stops = append(p.stops, pool.Close)
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return p, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	p.stops = append(p.stops, func() { _ = rdb.Close() })
	if err := rdb.Ping(ctx).Err(); err != nil {
		return p, fmt.Errorf("REDIS_URL: %w", err)
	}

	rsrv := grpcx.NewServer(grpcx.ServerOptions{Log: log})
	rimpl := retrieval.NewServer(retrieval.NewStore(pool), embedder, retrieval.Cloud{}, nopRecorder{}, log)
	rsrv.Register(&retrievalv1.RetrievalService_ServiceDesc, rimpl)
	rconn, stop, err := grpcx.InProcess(rsrv)
	if err != nil {
		return p, err
	}
	p.stops = append(p.stops, stop)
	p.retrieval = retrievalv1.NewRetrievalServiceClient(rconn)

	store, queue := ingest.NewStore(pool), ingest.NewQueue(rdb, cfg.RedisKeyPrefix)
	isrv := grpcx.NewServer(grpcx.ServerOptions{Log: log})
	isrv.Register(&ingestv1.IngestService_ServiceDesc, ingest.NewServer(store, queue, p.retrieval, nopRecorder{}, log, icfg.MaxBytes, icfg.MaxInflight))
	iconn, stop, err := grpcx.InProcess(isrv)
	if err != nil {
		return p, err
	}
	p.stops = append(p.stops, stop)
	p.ingest = ingestv1.NewIngestServiceClient(iconn)

	wo := icfg.WorkerOptions()
	wo.Block = 100 * time.Millisecond
	worker := ingest.NewWorker(store, queue, p.retrieval, log, wo)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := worker.Run(wctx); err != nil {
			log.Error("ingest worker stopped", "error", err)
		}
	})
	// As in `serve`: keep the planner's statistics of the chunk index fresh while loading.
	wg.Go(func() { rimpl.Run(wctx, time.Second) })
	p.stops = append(p.stops, func() { cancel(); wg.Wait() })
	return p, nil
}

// close stops the worker, then the servers, then the clients.
func (p *pipeline) close() {
	for i := len(p.stops) - 1; i >= 0; i-- {
		p.stops[i]()
	}
}

// errIngestFailed reports documents that ended failed.
var errIngestFailed = errors.New("ingestion failed")

// waitIngested polls until no document of the tenant's corpus is queued or processing,
// and returns the number that succeeded and their chunks. Failed documents are an error
// naming the first one and its reason.
func (p *pipeline) waitIngested(ctx context.Context, corpus string, timeout time.Duration) (docs, chunks int, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		busy := 0
		for _, st := range []string{ingest.StatusQueued, ingest.StatusProcessing} {
			res, err := p.ingest.ListDocuments(ctx, &ingestv1.ListDocumentsRequest{CorpusId: corpus, Status: st, PageSize: 1})
			if err != nil {
				return 0, 0, fmt.Errorf("wait for ingestion: %w", err)
			}
			busy += len(res.GetDocuments())
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("documents of corpus %s still ingesting after %s", corpus, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
	failed, err := p.ingest.ListDocuments(ctx, &ingestv1.ListDocumentsRequest{CorpusId: corpus, Status: ingest.StatusFailed, PageSize: 1})
	if err != nil {
		return 0, 0, err
	}
	if d := failed.GetDocuments(); len(d) > 0 {
		return 0, 0, fmt.Errorf("%w: document %s: %s", errIngestFailed, d[0].GetDocumentId(), d[0].GetFailureReason())
	}
	token := ""
	for {
		res, err := p.ingest.ListDocuments(ctx, &ingestv1.ListDocumentsRequest{CorpusId: corpus, Status: ingest.StatusSucceeded, PageSize: 200, PageToken: token})
		if err != nil {
			return 0, 0, err
		}
		for _, d := range res.GetDocuments() {
			docs++
			chunks += int(d.GetChunkCount())
		}
		if token = res.GetNextPageToken(); token == "" {
			return docs, chunks, nil
		}
	}
}

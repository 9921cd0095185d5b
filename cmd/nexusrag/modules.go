package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/services/gateway"
	"github.com/nexusrag/nexusrag/services/governance"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
	"github.com/nexusrag/nexusrag/services/run"
)

// module is one service of the binary, in the Loki "target" sense: `serve --services`
// picks modules by name. deps are the services it calls: each runs in this process or is
// reached at its <NAME>_GRPC_ADDR.
type module struct {
	name string
	deps []string
	init func(ctx context.Context, a *app) error
}

// modules lists every service, in start-up order. billing and failover join this list
// as their issues land.
func modules() []module {
	return []module{
		{name: "governance", init: initGovernance},
		{name: "retrieval", deps: []string{"governance"}, init: initRetrieval},
		{name: "ingest", deps: []string{"governance", "retrieval"}, init: initIngest},
		{name: "run", deps: []string{"governance", "retrieval"}, init: initRun},
		{name: "gateway", deps: []string{"gateway", "governance", "retrieval", "ingest", "run"}, init: initGateway},
	}
}

// migrationSets are all schemas' migrations, database-wide prerequisites first.
func migrationSets() []pgstore.Migrations {
	return []pgstore.Migrations{pgstore.Platform(), governance.Migrations(), retrieval.Migrations(), ingest.Migrations(), run.Migrations(), gateway.Migrations()}
}

func initGovernance(ctx context.Context, a *app) error {
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	a.grpc.Register(&governancev1.AuditService_ServiceDesc, governance.NewServer(governance.NewStore(pool), a.log))
	return nil
}

func initRetrieval(ctx context.Context, a *app) error {
	cfg, err := config.Parse[retrieval.Config](nil)
	if err != nil {
		return err
	}
	embedder, err := retrieval.NewEmbedder(ctx, cfg)
	if err != nil {
		return fmt.Errorf("EMBEDDINGS_PROVIDER=%s: %w", cfg.EmbeddingsProvider, err)
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	rec, err := a.recorder()
	if err != nil {
		return err
	}
	bedrockCalls, err := a.external(ctx, "bedrock")
	if err != nil {
		return err
	}
	vertexCalls, err := a.external(ctx, "vertex-search")
	if err != nil {
		return err
	}
	// Timeouts and retries are extcall's (EXT_*): the SDKs make one attempt each.
	cloud := retrieval.Cloud{
		Bedrock:      providers.NewBedrock(ctx, providers.BedrockOptions{MaxAttempts: 1}),
		Vertex:       providers.NewVertex(providers.VertexOptions{}),
		BedrockCalls: bedrockCalls, VertexCalls: vertexCalls,
	}
	a.onClose(cloud.Vertex.Close)
	srv := retrieval.NewServer(retrieval.NewStore(pool), embedder, cloud, rec, a.log)
	a.grpc.Register(&retrievalv1.RetrievalService_ServiceDesc, srv)
	a.goBackground("retrieval statistics", func(ctx context.Context) error { srv.Run(ctx, 5*time.Second); return nil })
	return nil
}

// initIngest serves the documents API and runs the worker that consumes ingestion jobs.
func initIngest(ctx context.Context, a *app) error {
	cfg, err := config.Parse[ingest.Config](nil)
	if err != nil {
		return err
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	rdb, err := a.redis(ctx)
	if err != nil {
		return err
	}
	rec, err := a.recorder()
	if err != nil {
		return err
	}
	conn, err := a.conn("retrieval")
	if err != nil {
		return err
	}
	store, queue, client := ingest.NewStore(pool), ingest.NewQueue(rdb, a.cfg.RedisKeyPrefix), retrievalv1.NewRetrievalServiceClient(conn)
	a.grpc.Register(&ingestv1.IngestService_ServiceDesc, ingest.NewServer(store, queue, client, rec, a.log, cfg.MaxBytes, cfg.MaxInflight))
	worker := ingest.NewWorker(store, queue, client, a.log, cfg.WorkerOptions())
	a.goBackground("ingest worker", worker.Run)
	return nil
}

// initRun serves the agent runs: the graph, sessions, generation and speech.
func initRun(ctx context.Context, a *app) error {
	cfg, err := config.Parse[run.Config](nil)
	if err != nil {
		return err
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	rec, err := a.recorder()
	if err != nil {
		return err
	}
	conn, err := a.conn("retrieval")
	if err != nil {
		return err
	}
	var gen run.Generator = run.Extractive{}
	if cfg.LLMProvider == "vertex" {
		v := run.NewVertex(ctx, run.VertexConfig{Project: cfg.GoogleProject, Location: cfg.GoogleLocation, Model: cfg.GeminiModel})
		if err := v.Err(); err != nil {
			a.log.WarnContext(ctx, "LLM_PROVIDER=vertex cannot generate; every run will answer with this error", "error", err)
		}
		gen = v
	}
	var speaker run.Speaker
	switch cfg.TTSProvider {
	case "fake":
		speaker = run.FakeTTS{}
	case "openai":
		speaker = run.OpenAITTS{BaseURL: cfg.OpenAIBaseURL, APIKey: cfg.OpenAIAPIKey, Model: cfg.OpenAITTSModel, Voice: cfg.OpenAITTSVoice}
	}
	llmCalls, err := a.external(ctx, "llm")
	if err != nil {
		return err
	}
	ttsCalls, err := a.external(ctx, "tts")
	if err != nil {
		return err
	}
	srv, err := run.NewServer(cfg, run.Deps{Store: run.NewStore(pool), Retrieval: retrievalv1.NewRetrievalServiceClient(conn),
		Generator: gen, Speaker: speaker, LLMCalls: llmCalls, TTSCalls: ttsCalls, Audit: rec, Log: a.log})
	if err != nil {
		return err
	}
	a.grpc.Register(&runv1.RunService_ServiceDesc, srv)
	return nil
}

func initGateway(ctx context.Context, a *app) error {
	cfg, err := config.Parse[gateway.Config](nil)
	if err != nil {
		return err
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	rdb, err := a.redis(ctx)
	if err != nil {
		return err
	}
	rec, err := a.recorder()
	if err != nil {
		return err
	}
	keys, err := a.gatewayKeys(ctx)
	if err != nil {
		return err
	}
	a.grpc.Register(&gatewayv1.AuthService_ServiceDesc, gateway.NewServer(gateway.NewStore(pool), keys, rec))

	conns := map[string]*grpc.ClientConn{}
	for _, host := range gateway.Hosts() {
		c, err := a.conn(host)
		if err != nil {
			return err
		}
		conns[host] = c
	}
	var limiter *gateway.RateLimiter
	if cfg.RateLimitEnabled {
		limiter = gateway.NewRateLimiter(rdb, a.cfg.RedisKeyPrefix, cfg.RateLimitOptions(), rec, a.log)
	}
	edge, err := gateway.NewEdge(ctx, cfg, gateway.EdgeDeps{
		Keys: keys, Audit: rec, Conns: conns, RateLimit: limiter,
		Idempotency: gateway.NewIdempotency(rdb, a.cfg.RedisKeyPrefix, cfg.IdempotencyTTL, a.log),
		Health:      gateway.NewHealth(conns, pool, rdb, 2*time.Second),
		Telemetry:   a.tel, Log: a.log,
	})
	if err != nil {
		return fmt.Errorf("gateway edge: %w", err)
	}
	a.http.Handle("/", edge)
	return nil
}

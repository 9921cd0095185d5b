package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// The demo corpus: tenant t1, corpus c1, three documents about the Agent 2.0 project that
// chunk into ten chunks (demoChunkSize keeps each section a chunk of its own).
const (
	demoTenant    = "t1"
	demoCorpus    = "c1"
	demoChunkSize = 320
)

type demoDocument struct{ id, filename, text string }

var demoDocuments = []demoDocument{
	{"agent2-testing-strategy", "testing-strategy.md", `# Agent 2.0 testing strategy

Agent 2.0 is tested in three layers. Unit tests sit beside the code and run on every commit in under two minutes. Integration tests run against real PostgreSQL with pgvector and real Redis, never against mocks of our own interfaces.

## Evaluation suite

Retrieval quality is measured on a fixed test collection with graded judgements. The suite reports nDCG@10, Recall@10 and MRR for every build, and the figures are kept so that a regression is visible at a glance.

## End-to-end tests

End-to-end tests start the real binary, stream answers over Server-Sent Events and check the order of every event. Fault tests stop Redis and terminate Postgres connections mid-traffic and expect the platform to recover without a restart.`},
	{"agent2-release-gates", "release-gates.md", `# Agent 2.0 release gates

A release candidate of Agent 2.0 ships only when every release gate is green. The gates are checked by CI and signed off by the release manager.

## Gate 1: quality

The evaluation suite must reach an nDCG@10 of at least 0.31 on the reference collection, and no judged query may lose more than 10% of its score against the previous release.

## Gate 2: reliability

The fault tests pass: Redis outages, Postgres connection loss and a hanging retrieval provider. The p99 time to the first token stays under 800 ms under the benchmark load.

## Gate 3: security

No secret appears in logs, audit rows or errors; every dependency is scanned; the RBAC matrix and tenant isolation tests pass.`},
	{"agent2-rollout-plan", "rollout-plan.md", `# Agent 2.0 rollout plan

Agent 2.0 rolls out in waves once the release gates are green: 1% of tenants for a day, then 10%, then everyone. Each wave is a percentage rollout flag.

## Monitoring

During each wave the on-call engineer watches error rate, time to first token and retrieval latency against the SLOs. A breach pauses the rollout automatically.

## Rollback

A wave can be rolled back within ten minutes by setting the rollout flag to the previous release. Sessions keep working because the message schema is backward compatible.`},
}

func seedDemoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "seed-demo",
		Short: "Load the Agent 2.0 demo corpus (tenant t1, corpus c1) through the ingestion pipeline",
		Long: `seed-demo creates corpus c1 of tenant t1 and ingests three short documents about the
"Agent 2.0" project (testing strategy, release gates, rollout plan: ten chunks) through the
real ingestion pipeline, so that "What are the release gates for Agent 2.0?" finds them.
Running it again prints "already seeded" and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return seedDemo(cmd.Context()) },
	}
}

func seedDemo(ctx context.Context) error {
	p, err := openPipeline(ctx)
	if err != nil {
		return err
	}
	defer p.close()
	as := principal.With(ctx, principal.Principal{TenantID: demoTenant, KeyID: "seed-demo", Role: apiv1.Role_ROLE_EDITOR})

	var missing []demoDocument
	for _, d := range demoDocuments {
		_, err := p.ingest.GetDocument(as, &ingestv1.GetDocumentRequest{DocumentId: d.id})
		switch status.Code(err) {
		case codes.OK:
		case codes.NotFound:
			missing = append(missing, d)
		default:
			return fmt.Errorf("look up demo document %s: %w", d.id, err)
		}
	}
	if len(missing) == 0 {
		fmt.Printf("already seeded: tenant %s, corpus %s (%d documents)\n", demoTenant, demoCorpus, len(demoDocuments))
		return nil
	}
	name := "Agent 2.0 demo"
	if _, err := p.retrieval.UpdateCorpus(as, &retrievalv1.UpdateCorpusRequest{CorpusId: demoCorpus, Name: &name, AllowMissing: true}); err != nil {
		return fmt.Errorf("create corpus %s: %w", demoCorpus, err)
	}
	for _, d := range missing {
		_, err := p.ingest.CreateDocument(as, &ingestv1.CreateDocumentRequest{CorpusId: demoCorpus, DocumentId: d.id, Filename: d.filename,
			ContentType: "text/markdown", Text: d.text, ChunkSizeChars: demoChunkSize, ChunkOverlapChars: 0})
		if err != nil {
			return fmt.Errorf("ingest demo document %s: %w", d.id, err)
		}
	}
	docs, chunks, err := p.waitIngested(as, demoCorpus, time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("seeded: tenant %s, corpus %s: %d documents, %d chunks\n", demoTenant, demoCorpus, docs, chunks)
	return nil
}

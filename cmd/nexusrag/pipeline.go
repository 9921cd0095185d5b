package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/services/ingest"
)

// pipeline is the retrieval and ingest services run inside an operator command
// (seed-demo, eval): the application of `serve`, started with the modules these two
// need, called through gRPC over memory. Documents go the real way: CreateDocument, the
// Redis stream, the worker, UpsertDocuments. A running platform's workers may take some
// of the jobs; that is fine, they do the same.
type pipeline struct {
	app       *app
	retrieval retrievalv1.RetrievalServiceClient
	ingest    ingestv1.IngestServiceClient
}

// openPipeline starts the pipeline from the environment's configuration.
func openPipeline(ctx context.Context) (*pipeline, error) {
	a, err := openApp(ctx, "retrieval", "ingest")
	if err != nil {
		return nil, err
	}
	p := &pipeline{app: a}
	rc, err := a.conn("retrieval")
	if err == nil {
		var ic *grpc.ClientConn
		if ic, err = a.conn("ingest"); err == nil {
			p.retrieval, p.ingest = retrievalv1.NewRetrievalServiceClient(rc), ingestv1.NewIngestServiceClient(ic)
			return p, nil
		}
	}
	_ = a.stop()
	return nil, err
}

// close stops the worker, then the services, then the clients.
func (p *pipeline) close() {
	if err := p.app.stop(); err != nil {
		p.app.log.Warn("operator command did not stop cleanly", "error", err)
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

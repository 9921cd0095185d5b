// Package ingest is the ingestion service: documents, ingestion jobs on a Redis stream,
// the worker that chunks documents and hands the chunks to the retrieval service.
//
// Where things are: server.go (every RPC), store.go (documents), config.go,
// migrations/; queue.go (the Redis stream), worker.go, chunk.go.
package ingest

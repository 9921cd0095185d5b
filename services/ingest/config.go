package ingest

import (
	"fmt"
	"time"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/extract"
)

// Config is the ingest service's configuration, parsed from the environment.
type Config struct {
	// MaxBytes bounds a document's text (the gateway reads the same variable for its body limit).
	MaxBytes int64 `env:"INGEST_MAX_BYTES" envDefault:"10485760"`
	// MaxConcurrency is the ingestion bulkhead: the uploads, reindexes and deletes the
	// ingest service handles at once; more answer 503 SERVICE_BUSY at once.
	MaxConcurrency int `env:"INGEST_MAX_CONCURRENCY" envDefault:"64"`
	// WorkerConcurrency is how many batches of jobs a worker processes at once.
	WorkerConcurrency int `env:"INGEST_WORKER_CONCURRENCY" envDefault:"4"`
	// BatchSize is the most jobs a worker reads and indexes together.
	BatchSize int `env:"INGEST_BATCH_SIZE" envDefault:"32"`
	// ClaimTimeout is how long a job may go unacknowledged before another worker redoes it.
	ClaimTimeout time.Duration `env:"INGEST_CLAIM_TIMEOUT" envDefault:"60s"`
	// MaxAttempts bounds the runs of a job that keeps failing for a transient reason (a
	// stall included); the job is then a dead letter.
	MaxAttempts int `env:"INGEST_MAX_ATTEMPTS" envDefault:"5"`
	// StallTimeout is how long a job's stage may go without progress (a batch of chunks
	// embedded, the chunks written) before its attempt fails with INGEST_STALLED.
	StallTimeout time.Duration `env:"INGEST_STALL_TIMEOUT" envDefault:"2m"`
	// RequeueAfter is how long an unfinished document may go without progress before its
	// job is put on the queue again (a Redis that restarted without persistence loses jobs).
	RequeueAfter time.Duration `env:"INGEST_REQUEUE_AFTER" envDefault:"5m"`
	// RequeueGrace is how long a document whose job Redis could not take waits before the
	// sweep enqueues it.
	RequeueGrace time.Duration `env:"INGEST_REQUEUE_GRACE" envDefault:"10s"`
	// MaxPages is the most pages a PDF may have; one with more fails at once (PDF_TOO_MANY_PAGES).
	MaxPages int `env:"INGEST_MAX_PAGES" envDefault:"2000"`
	// ExtractTimeout bounds the extraction of one PDF's text (PDF_EXTRACT_TIMEOUT); the tools
	// also get it as their CPU time limit.
	ExtractTimeout time.Duration `env:"INGEST_EXTRACT_TIMEOUT" envDefault:"30s"`
}

// MaxDocumentBytes is the highest INGEST_MAX_BYTES: a document travels in one gRPC message.
const MaxDocumentBytes = 32 << 20

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch {
	case c.MaxBytes < 1024 || c.MaxBytes > MaxDocumentBytes:
		return fmt.Errorf("INGEST_MAX_BYTES: %d is outside 1024..%d", c.MaxBytes, MaxDocumentBytes)
	case c.WorkerConcurrency < 1 || c.WorkerConcurrency > 64:
		return fmt.Errorf("INGEST_WORKER_CONCURRENCY: %d is outside 1..64", c.WorkerConcurrency)
	case c.MaxConcurrency < 1:
		return fmt.Errorf("INGEST_MAX_CONCURRENCY: must be at least 1")
	case c.BatchSize < 1 || c.BatchSize > 256:
		return fmt.Errorf("INGEST_BATCH_SIZE: %d is outside 1..256", c.BatchSize)
	case c.ClaimTimeout < 3*time.Second:
		return fmt.Errorf("INGEST_CLAIM_TIMEOUT: %s is below 3s", c.ClaimTimeout)
	case c.MaxAttempts < 1:
		return fmt.Errorf("INGEST_MAX_ATTEMPTS: must be at least 1")
	case c.StallTimeout < time.Second:
		return fmt.Errorf("INGEST_STALL_TIMEOUT: %s is below 1s", c.StallTimeout)
	case c.RequeueGrace < 100*time.Millisecond:
		return fmt.Errorf("INGEST_REQUEUE_GRACE: %s is below 100ms", c.RequeueGrace)
	case c.RequeueAfter < c.ClaimTimeout:
		return fmt.Errorf("INGEST_REQUEUE_AFTER: %s is below INGEST_CLAIM_TIMEOUT (%s)", c.RequeueAfter, c.ClaimTimeout)
	case c.MaxPages < 1 || c.MaxPages > 100_000:
		return fmt.Errorf("INGEST_MAX_PAGES: %d is outside 1..100000", c.MaxPages)
	case c.ExtractTimeout < time.Second || c.ExtractTimeout > 10*time.Minute:
		return fmt.Errorf("INGEST_EXTRACT_TIMEOUT: %s is outside 1s..10m", c.ExtractTimeout)
	}
	return nil
}

// Renames are the variables renamed when INGEST_MAX_CONCURRENCY became the bulkhead, as
// operators' documentation had it: a configuration that still sets INGEST_MAX_INFLIGHT
// means the worker by INGEST_MAX_CONCURRENCY.
func (*Config) Renames() []config.Rename {
	return []config.Rename{
		{Old: "INGEST_MAX_CONCURRENCY", New: "INGEST_WORKER_CONCURRENCY", OnlyWith: "INGEST_MAX_INFLIGHT"},
		{Old: "INGEST_MAX_INFLIGHT", New: "INGEST_MAX_CONCURRENCY"},
	}
}

// WorkerOptions are the worker's options from the configuration.
func (c Config) WorkerOptions() WorkerOptions {
	return WorkerOptions{Concurrency: c.WorkerConcurrency, BatchSize: c.BatchSize, ClaimTimeout: c.ClaimTimeout,
		MaxAttempts: c.MaxAttempts, StallTimeout: c.StallTimeout, RequeueAfter: c.RequeueAfter, RequeueGrace: c.RequeueGrace,
		PDF: extract.PDFLimits{MaxPages: c.MaxPages, MaxText: c.MaxBytes, Timeout: c.ExtractTimeout}}
}

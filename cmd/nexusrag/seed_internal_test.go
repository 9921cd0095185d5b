package main

import (
	"testing"

	"github.com/nexusrag/nexusrag/services/ingest"
)

// The issue promises ten chunks across three documents.
func TestDemoCorpusIsTenChunks(t *testing.T) {
	total := 0
	for _, d := range demoDocuments {
		n := len(ingest.Chunk(d.text, ingest.ChunkOptions{Size: demoChunkSize}))
		t.Logf("%s: %d chunks", d.id, n)
		total += n
	}
	if total != 10 {
		t.Fatalf("the demo corpus has %d chunks, want 10", total)
	}
}

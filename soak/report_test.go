package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/internal/launch"
)

func TestFailuresNameWhatBreaksTheContract(t *testing.T) {
	ok := []sample{
		{class: classUpload, status: 202},
		{class: classRead, status: 503, code: "DEPENDENCY_UNAVAILABLE", requestID: "r1"},
		{class: classRun, status: 200, code: "DEPENDENCY_UNAVAILABLE"},
		{class: classDelete, status: 409, code: "DOCUMENT_BUSY"},
	}
	calm := &report{clients: []*client{{samples: ok}}, before: launch.Memory{Goroutines: 60}, after: launch.Memory{Goroutines: 62}}
	require.Empty(t, calm.failures())

	bad := append(ok,
		sample{class: classRead, status: 500, code: "INTERNAL", requestID: "r2"},
		sample{class: classUpload, status: 503, code: "SOMETHING_NEW", requestID: "r3"},
		sample{class: classRun, status: 200, code: "INTERNAL", requestID: "r4"},
		sample{class: classRun, problem: "the stream broke: EOF", requestID: "r5"},
	)
	r := &report{clients: []*client{{samples: bad, anomalies: []string{"client 0: lost"}}}, logDir: "var/soak/x",
		before: launch.Memory{Goroutines: 60}, after: launch.Memory{Goroutines: 200}, docs: docReport{findings: []string{"lost: t/d"}}}
	got := strings.Join(r.failures(), "\n")
	for _, want := range []string{"500 INTERNAL (request r2)", "503 SOMETHING_NEW (request r3)", "200 INTERNAL (request r4)",
		"the stream broke: EOF (request r5)", "client 0: lost", "lost: t/d", "goroutines grew from 60 to 200", "var/soak/x"} {
		require.Contains(t, got, want)
	}
	require.NotContains(t, got, "r1", "a documented 503 is not a failure")
}

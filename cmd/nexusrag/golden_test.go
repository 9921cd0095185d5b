package main_test

import (
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of this package")

// rawRun posts to /v1/run and returns the response body byte for byte.
func (p *platform) rawRun(key, body string, headers ...string) string {
	p.t.Helper()
	res := p.send(http.MethodPost, "/v1/run", key, body, headers...)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(p.t, err)
	return string(b)
}

// The ids a run draws at random, replaced before comparing: everything else is fixed
// (the request id is the client's, the corpus and the offline generator deterministic,
// no heartbeat falls within a run).
var randomIDs = []*regexp.Regexp{
	regexp.MustCompile(`("run_id":")[0-9a-f-]{36}(")`),
	regexp.MustCompile(`("audio_id":")[0-9a-f]{32}(")`),
	regexp.MustCompile(`(/v1/audio/)[0-9a-f]{32}(\.mp3)`),
}

func normalizeIDs(s string) string {
	for _, re := range randomIDs {
		s = re.ReplaceAllString(s, "${1}RANDOM${2}")
	}
	return s
}

// TestRunStreamGolden records whole SSE streams byte for byte: an answer with debug
// events and audio, a provider failure, and a refused resume. The bytes on the wire are
// the contract of every SSE client; this file must not change when the code does.
func TestRunStreamGolden(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"TTS_PROVIDER=fake", "AUDIO_DIR=" + t.TempDir(), "DEBUG_EVENTS=true"})
	_, err := run(t, p.env, "", "seed-demo")
	require.NoError(t, err)
	_, editor := p.createKey("t1", "editor")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/kb", editor,
		`{"allow_missing":true,"provider_config_json":{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB1","region":"us-east-1"}}}`).Status)

	var got strings.Builder
	for _, c := range []struct{ name, body, lastEventID string }{
		{"answer", `{"session_id":"golden","corpus_id":"c1","message":"What are the release gates for Agent 2.0?","top_k":3,"audio":true}`, ""},
		{"provider failure", `{"session_id":"golden","corpus_id":"kb","message":"What are the release gates?"}`, ""},
		{"resume", `{"session_id":"golden","corpus_id":"c1","message":"again"}`, "7"},
	} {
		headers := []string{"X-Request-Id", "golden-" + strings.ReplaceAll(c.name, " ", "-")}
		if c.lastEventID != "" {
			headers = append(headers, "Last-Event-ID", c.lastEventID)
		}
		got.WriteString("### " + c.name + "\n" + normalizeIDs(p.rawRun(editor, c.body, headers...)))
	}
	path := filepath.Join("testdata", "run-stream.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestRunStreamGolden ./cmd/nexusrag -update to record it")
	require.Equal(t, string(want), got.String())
}

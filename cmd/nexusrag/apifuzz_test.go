package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apifuzz"
)

// TestAPIFuzz sends every route of the served OpenAPI document (the gateway's own
// routes included) its valid request and every single mutation of it (pkg/apifuzz),
// against the built binary on real Postgres and Redis. Every answer must be below 500,
// an error must come in the envelope with a stable code, a stream must not end in an
// INTERNAL error, and a refused write must leave the database as it was.
//
// NEXUSRAG_FUZZ_API_RANDOM adds that many random combinations per route
// (NEXUSRAG_FUZZ_API_SEED picks them); `make fuzz-api` sets it.
func TestAPIFuzz(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	ctx := context.Background()
	_, admin := p.createKey("t1", "admin")
	targetID, _ := p.createKey("t1", "reader") // the key the key routes act on
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing":true}`).Status)
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", admin,
		`{"corpus_id":"c1","document_id":"d1","text":"The release gates of Agent 2.0 are quality, reliability and security."}`).Status)
	p.waitDocument(admin, "d1", "succeeded")

	doc := p.do(http.MethodGet, "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	ops, err := apifuzz.Operations(doc.Body)
	require.NoError(t, err)
	gen := apifuzz.NewGenerator(apifuzz.Fixtures{
		"corpus_id": "c1", "document_id": "d1", "key_id": targetID, "audio_id": "0123456789abcdef0123456789abcdef",
		"text": "A fuzzed document.", "name": "Fuzzed", "message": "What are the release gates?", "session_id": "fuzz",
		"filename": "fuzz.md", "content_type": "text/markdown", "top_k": "3", "page_size": "10", "limit": "10",
		"chunk_size_chars": "500", "chunk_overlap_chars": "50",
	}, "Bearer "+admin)

	random, _ := strconv.Atoi(os.Getenv("NEXUSRAG_FUZZ_API_RANDOM"))
	seed, err := strconv.ParseUint(os.Getenv("NEXUSRAG_FUZZ_API_SEED"), 10, 64)
	if err != nil {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	f := &apiFuzzer{t: t, p: p, ctx: ctx, counts: map[string]int{}}
	for _, op := range ops {
		if op.Path == "/v1/openapi.json" || op.Path == "/v1/docs" {
			continue // documents, not inputs
		}
		cases := gen.Cases(op)
		if random > 0 {
			cases = append(cases, gen.Random(op, rng, random)...)
		}
		for _, c := range cases {
			f.send(c)
		}
	}
	routes := make([]string, 0, len(f.counts))
	for r := range f.counts {
		routes = append(routes, r)
	}
	sort.Strings(routes)
	var report strings.Builder
	total := 0
	for _, r := range routes {
		fmt.Fprintf(&report, "  %-48s %5d cases\n", r, f.counts[r])
		total += f.counts[r]
	}
	t.Logf("API fuzz: %d cases over %d routes (seed %d, %d random per route), %d failures\n%s", total, len(routes), seed, random, len(f.failures), report.String())
	if len(f.failures) > 0 {
		t.Errorf("%d failures; replay each with KEY=<an admin key of tenant t1> against a platform:\n%s", len(f.failures), strings.Join(f.failures, "\n"))
	}
}

type apiFuzzer struct {
	t        *testing.T
	p        *platform
	ctx      context.Context
	counts   map[string]int
	failures []string
}

func (f *apiFuzzer) send(c apifuzz.Case) {
	f.t.Helper()
	f.counts[c.Route]++
	var before string
	if c.Write {
		before = f.fingerprint()
	}
	u := f.p.HTTP + c.Path
	if len(c.Query) > 0 {
		u += "?" + c.Query.Encode()
	}
	req, err := http.NewRequestWithContext(f.ctx, c.Method, u, bytes.NewReader(c.Body))
	if err != nil {
		return // a request Go cannot even express (a URL with a NUL): nothing reaches the server
	}
	req.Header = c.Header.Clone()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		if strings.Contains(err.Error(), "invalid header field") || strings.Contains(err.Error(), "invalid control character") {
			return // refused by net/http before sending
		}
		f.fail(c, fmt.Sprintf("no answer: %v", err))
		return
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	_ = res.Body.Close()
	if problem := judge(res, body); problem != "" {
		f.fail(c, problem)
	}
	if !c.Write {
		return
	}
	if res.StatusCode >= 400 {
		if after := f.fingerprint(); after != before {
			f.fail(c, fmt.Sprintf("refused with %d but the database changed: %s -> %s", res.StatusCode, before, after))
		}
		return
	}
	f.waitIdle() // an accepted write may start ingestion: let it end before the next check
}

// judge says what is wrong with an answer, or "".
func judge(res *http.Response, body []byte) string {
	ct := res.Header.Get("Content-Type")
	switch {
	case res.StatusCode >= 500:
		return fmt.Sprintf("answered %d: %s", res.StatusCode, excerptBody(body))
	case res.StatusCode >= 400:
		var env struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(body, &env) != nil || env.Error.Code == "" {
			return fmt.Sprintf("answered %d outside the error envelope (%s): %s", res.StatusCode, ct, excerptBody(body))
		}
	case strings.HasPrefix(ct, "text/event-stream"):
		if bytes.Contains(body, []byte(`"code":"INTERNAL"`)) {
			return "the stream carries an INTERNAL error: " + excerptBody(body)
		}
	}
	return ""
}

func excerptBody(b []byte) string {
	if len(b) > 300 {
		b = b[:300]
	}
	return strconv.Quote(string(b))
}

func (f *apiFuzzer) fail(c apifuzz.Case, problem string) {
	f.failures = append(f.failures, fmt.Sprintf("- %s [%s]: %s\n  %s", c.Route, c.Name, problem, c.CurlLine(f.p.HTTP)))
}

// fingerprint summarizes every table a write could touch.
func (f *apiFuzzer) fingerprint() string {
	f.t.Helper()
	var fp string
	require.NoError(f.t, f.p.DB().QueryRow(f.ctx, `SELECT concat_ws(' | ',
		(SELECT count(*) || ' keys ' || coalesce(max(updated_at)::text, '-') FROM gateway.api_keys),
		(SELECT count(*) || ' corpora ' || coalesce(max(updated_at)::text, '-') FROM retrieval.corpora),
		(SELECT count(*) || ' chunks' FROM retrieval.chunks),
		(SELECT count(*) || ' documents ' || coalesce(max(updated_at)::text, '-') || ' v' || coalesce(sum(version), 0) FROM ingest.documents),
		(SELECT count(*) || ' sessions' FROM run.sessions),
		(SELECT count(*) || ' messages' FROM run.messages))`).Scan(&fp))
	return fp
}

// waitIdle waits until no document is being ingested or deleted.
func (f *apiFuzzer) waitIdle() {
	f.t.Helper()
	require.Eventually(f.t, func() bool {
		var busy int
		require.NoError(f.t, f.p.DB().QueryRow(f.ctx,
			`SELECT count(*) FROM ingest.documents WHERE status IN ('queued', 'processing', 'deleting')`).Scan(&busy))
		return busy == 0
	}, 30*time.Second, 20*time.Millisecond)
}

// TestBadInputIsRefusedNamingTheField: the inputs of the report that found these
// classes, each now a 400 with a stable code and the field named.
func TestBadInputIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	keyID, admin := p.createKey("t1", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing":true}`).Status)
	upload := func(file []byte) response {
		var b strings.Builder
		b.WriteString("--b\r\nContent-Disposition: form-data; name=\"corpus_id\"\r\n\r\nc1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\n")
		b.Write(file)
		b.WriteString("\r\n--b--\r\n")
		req, err := http.NewRequest(http.MethodPost, p.HTTP+"/v1/documents", strings.NewReader(b.String()))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		out := response{Status: r.StatusCode, Body: body}
		_ = json.Unmarshal(body, &out.JSON)
		return out
	}
	tests := []struct {
		name  string
		call  func() response
		code  string
		field string
	}{
		{"upload with NUL", func() response { return upload([]byte("hello\x00world")) }, "INVALID_ARGUMENT", "file"},
		{"upload not UTF-8", func() response { return upload([]byte("caf\xe9")) }, "INVALID_ARGUMENT", "file"},
		{"JSON text with NUL", func() response {
			return p.do(http.MethodPost, "/v1/documents/text", admin, `{"corpus_id":"c1","text":"hello\u0000world"}`)
		}, "INVALID_ARGUMENT", "text"},
		{"corpus name with NUL", func() response {
			return p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"name":"a\u0000b"}`)
		}, "INVALID_ARGUMENT", "name"},
		{"provider config with NUL", func() response {
			return p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"provider_config_json":{"retrieval":{"provider":"local\u0000"}}}`)
		}, "INVALID_ARGUMENT", "provider_config_json.retrieval.provider"},
		{"API key name with NUL", func() response {
			return p.do(http.MethodPatch, "/v1/api-keys/"+keyID, admin, `{"name":"a\u0000b"}`)
		}, "INVALID_ARGUMENT", "name"},
		{"page token of bytes", func() response {
			return p.do(http.MethodGet, "/v1/documents?corpus_id=c1&page_token=%ff%00", admin, "")
		},
			"INVALID_PAGE_TOKEN", "page_token"},
		{"page token with a NUL inside", func() response {
			return p.do(http.MethodGet, "/v1/documents?page_token=eyJ0IjoiMjAyNi0wMS0wMVQwMDowMDowMFoiLCJpIjoiXHUwMDAwIn0", admin, "")
		}, "INVALID_PAGE_TOKEN", "page_token"},
		{"audit cursor of bytes", func() response { return p.do(http.MethodGet, "/v1/audit/events?cursor=%ff", admin, "") }, "INVALID_CURSOR", "cursor"},
		{"run message with NUL", func() response {
			return p.do(http.MethodPost, "/v1/run", admin, `{"session_id":"s","corpus_id":"c1","message":"hi\u0000"}`)
		}, "INVALID_ARGUMENT", "message"},
		{"document id of bytes", func() response { return p.do(http.MethodGet, "/v1/documents/a%ffb", admin, "") }, "INVALID_ARGUMENT", "document_id"},
	}
	for _, tt := range tests {
		r := tt.call()
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", tt.name, r.Body)
		require.Equal(t, tt.code, r.errorCode(), tt.name)
		details, _ := r.JSON["error"].(map[string]any)["details"].(map[string]any)
		require.Equal(t, tt.field, details["field"], tt.name)
	}
	var docs int
	require.NoError(t, p.DB().QueryRow(context.Background(), `SELECT count(*) FROM ingest.documents`).Scan(&docs))
	require.Zero(t, docs, "nothing was stored")
}

package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/apifuzz"
)

const (
	corpusAllowed, corpusForbidden = "corpus-allowed", "corpus-forbidden"
	docAllowed, docForbidden       = "doc-allowed", "doc-forbidden"
)

// notCorpusBound are routes whose valid request names a corpus or document of the
// forbidden corpus without being about it (none today): each needs a reason.
var notCorpusBound = map[string]string{}

// TestScopedKeyWalksEveryRoute creates a key of tenant t1 scoped to one corpus and walks
// every route of the served OpenAPI document with it. Tenant t2 holds the same corpora,
// documents and keys, with an unscoped admin key: the baseline. On the allowed corpus
// every route answers the scoped key as it answers the baseline; every route that names
// the other corpus (in its path, query or body, directly or through a document) answers
// 403 FORBIDDEN naming that corpus; lists show only the allowed corpus.
func TestScopedKeyWalksEveryRoute(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	admin1, target1 := scopeWorld(p, "t1")
	admin2, target2 := scopeWorld(p, "t2")
	out, err := run(t, p.env, "", "apikey", "create", "--tenant", "t1", "--role", "admin", "--name", "scoped",
		"--corpus-ids", corpusAllowed, "--output", "json")
	require.NoError(t, err)
	var created struct {
		KeyID     string   `json:"key_id"`
		APIKey    string   `json:"api_key"`
		CorpusIDs []string `json:"corpus_ids"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.Equal(t, []string{corpusAllowed}, created.CorpusIDs)
	scoped := created.APIKey

	t.Run("the key shows its scope", func(t *testing.T) {
		me := p.do(http.MethodGet, "/v1/auth/whoami", scoped, "")
		require.Equal(t, []any{corpusAllowed}, me.data()["corpus_ids"], string(me.Body))
		keys := p.do(http.MethodGet, "/v1/api-keys", admin1, "")
		require.Equal(t, http.StatusOK, keys.Status)
		found := false
		for _, k := range keys.data()["api_keys"].([]any) {
			if k := k.(map[string]any); k["key_id"] == created.KeyID {
				require.Equal(t, []any{corpusAllowed}, k["corpus_ids"])
				found = true
			}
		}
		require.True(t, found)
		bad := p.do(http.MethodPost, "/v1/self-serve/api-keys", admin1, `{"name":"x","role":"reader","corpus_ids":["a","a"]}`)
		require.Equal(t, http.StatusBadRequest, bad.Status, string(bad.Body))
		require.Equal(t, "CORPUS_SCOPE_INVALID", bad.errorCode())
		wide := p.do(http.MethodPost, "/v1/self-serve/api-keys", scoped, `{"name":"x","role":"reader"}`)
		require.Equal(t, http.StatusForbidden, wide.Status, "a scoped admin mints no unscoped key: %s", wide.Body)
	})

	t.Run("lists show only the allowed corpus", func(t *testing.T) {
		ids := func(r response, list, field string) []string {
			t.Helper()
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			var out []string
			for _, it := range r.data()[list].([]any) {
				out = append(out, it.(map[string]any)[field].(string))
			}
			return out
		}
		require.Equal(t, []string{corpusAllowed}, ids(p.do(http.MethodGet, "/v1/corpora", scoped, ""), "corpora", "corpus_id"))
		require.Len(t, ids(p.do(http.MethodGet, "/v1/corpora", admin1, ""), "corpora", "corpus_id"), 2, "the unscoped key sees both")
		require.Equal(t, []string{docAllowed}, ids(p.do(http.MethodGet, "/v1/documents", scoped, ""), "documents", "document_id"))
		require.Equal(t, []string{docAllowed}, ids(p.do(http.MethodGet, "/v1/ui/documents", scoped, ""), "items", "document_id"))
		require.Equal(t, []string{corpusAllowed}, ids(p.do(http.MethodGet, "/v1/ui/bootstrap", scoped, ""), "corpora", "corpus_id"))
		dash := p.do(http.MethodGet, "/v1/ui/dashboard/summary", scoped, "").data()
		require.EqualValues(t, 1, dash["corpora"])
		require.EqualValues(t, 1, dash["documents_total"])

		// The audit pipeline is asynchronous: wait until the unscoped admin sees the other
		// corpus's events, then the scoped key must not.
		mentions := func(key string) bool {
			for _, it := range p.do(http.MethodGet, "/v1/ui/activity?limit=100", key, "").data()["items"].([]any) {
				if id := it.(map[string]any)["resource_id"]; id == corpusForbidden || id == docForbidden {
					return true
				}
			}
			return false
		}
		require.Eventually(t, func() bool { return mentions(admin1) }, 10*time.Second, 50*time.Millisecond)
		require.False(t, mentions(scoped), "activity hides the other corpus")
	})

	t.Run("a run on the other corpus is refused before any event", func(t *testing.T) {
		res := p.send(http.MethodPost, "/v1/run", scoped, `{"session_id":"s1","corpus_id":"`+corpusForbidden+`","message":"What are the release gates?"}`)
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		require.Equal(t, http.StatusForbidden, res.StatusCode, string(body))
		require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"), res.Header.Get("Content-Type"))
		require.NotContains(t, string(body), "event:")
		var env map[string]any
		require.NoError(t, json.Unmarshal(body, &env))
		e := env["error"].(map[string]any)
		require.Equal(t, "FORBIDDEN", e["code"])
		require.Equal(t, corpusForbidden, e["details"].(map[string]any)["corpus_id"])
	})

	t.Run("the scope holds on the gRPC port", func(t *testing.T) {
		ctx := withKey(context.Background(), scoped)
		client := retrievalv1.NewRetrievalServiceClient(dialWith(t, p.GRPC, nil))
		list, err := client.ListCorpora(ctx, &retrievalv1.ListCorporaRequest{})
		require.NoError(t, err)
		require.Len(t, list.GetCorpora(), 1)
		_, err = client.GetCorpus(ctx, &retrievalv1.GetCorpusRequest{CorpusId: corpusForbidden})
		require.Equal(t, codes.PermissionDenied, status.Code(err), err)
		e, _ := apierr.FromStatus(status.Convert(err))
		require.Equal(t, corpusForbidden, e.Details["corpus_id"])
	})

	doc := p.do(http.MethodGet, "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	ops, err := apifuzz.Operations(doc.Body)
	require.NoError(t, err)
	// Deletes last, so that the other routes find the allowed document.
	slices.SortFunc(ops, func(a, b apifuzz.Operation) int {
		da, db := a.Method == http.MethodDelete, b.Method == http.MethodDelete
		if da != db {
			if da {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	fixtures := func(tenant, corpus, document, target string) apifuzz.Fixtures {
		return apifuzz.Fixtures{"tenant_id": tenant, "corpus_id": corpus, "document_id": document, "key_id": target,
			"audio_id": "0123456789abcdef0123456789abcdef", "text": "A document of the walk.", "name": "Walked",
			"message": "What are the release gates?", "session_id": "walk", "filename": "walk.md", "content_type": "text/markdown",
			"top_k": "3", "page_size": "10", "limit": "10", "overwrite": "true"}
	}
	forbiddenGen := apifuzz.NewGenerator(fixtures("t1", corpusForbidden, docForbidden, target1), "Bearer "+scoped)
	scopedGen := apifuzz.NewGenerator(fixtures("t1", corpusAllowed, docAllowed, target1), "Bearer "+scoped)
	baseGen := apifuzz.NewGenerator(fixtures("t2", corpusAllowed, docAllowed, target2), "Bearer "+admin2)

	// First the other corpus: nothing may happen there, so the walk on the allowed one
	// starts from the same state in both tenants.
	var touching []string
	for _, op := range ops {
		c := forbiddenGen.Cases(op)[0]
		if !mentionsForbidden(c) {
			continue
		}
		route := op.Method + " " + op.Path
		if reason, ok := notCorpusBound[route]; ok {
			t.Logf("%s names the other corpus but is not about it: %s", route, reason)
			continue
		}
		touching = append(touching, route)
		r := sendCase(t, p, c)
		require.Equal(t, http.StatusForbidden, r.Status, "%s: %s", route, r.Body)
		require.Equal(t, "FORBIDDEN", r.errorCode(), route)
		require.Equal(t, corpusForbidden, r.JSON["error"].(map[string]any)["details"].(map[string]any)["corpus_id"], route)
	}
	// A new route naming a corpus or a document joins this list (or notCorpusBound).
	require.ElementsMatch(t, []string{
		"GET /v1/corpora/{corpus_id}", "PATCH /v1/corpora/{corpus_id}",
		"GET /v1/documents", "POST /v1/documents", "POST /v1/documents/text", "GET /v1/documents/{document_id}",
		"DELETE /v1/documents/{document_id}", "POST /v1/documents/{document_id}/reindex",
		"POST /v1/run", "GET /v1/ui/documents", "POST /v1/ui/actions/reindex-document",
	}, touching)
	require.Equal(t, "succeeded", p.waitDocument(admin1, docForbidden, "succeeded")["status"], "the refused calls changed nothing")

	answers := map[int]int{}
	for _, op := range ops {
		if op.Path == "/v1/openapi.json" || op.Path == "/v1/docs" {
			continue
		}
		route := op.Method + " " + op.Path
		start := time.Now()
		got := sendCase(t, p, scopedGen.Cases(op)[0])
		want := sendCase(t, p, baseGen.Cases(op)[0])
		require.Equal(t, want.Status, got.Status, "%s: the scoped key got %s, the unscoped key %s", route, got.Body, want.Body)
		require.Equal(t, want.errorCode(), got.errorCode(), route)
		answers[got.Status]++
		if slices.Contains(touching, route) {
			require.Less(t, got.Status, 300, "%s works on the allowed corpus: %s", route, got.Body)
		}
		settle(t, p, admin1)
		settle(t, p, admin2)
		if d := time.Since(start); d > time.Second {
			t.Logf("%s took %s", route, d.Round(time.Millisecond))
		}
	}
	t.Logf("allowed corpus: %d routes answered alike, by status %v", len(ops)-2, answers)
}

// scopeWorld gives tenant the two corpora, a succeeded document in each, and returns
// an unscoped admin key and the id of a key the key routes act on.
func scopeWorld(p *platform, tenant string) (admin, target string) {
	p.t.Helper()
	_, admin = p.createKey(tenant, "admin")
	target, _ = p.createKey(tenant, "reader")
	for corpus, doc := range map[string]string{corpusAllowed: docAllowed, corpusForbidden: docForbidden} {
		require.Equal(p.t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/"+corpus, admin, `{"allow_missing":true}`).Status)
		r := p.do(http.MethodPost, "/v1/documents/text", admin,
			`{"corpus_id":"`+corpus+`","document_id":"`+doc+`","text":"The release gates of Agent 2.0 are quality, reliability and security."}`)
		require.Equal(p.t, http.StatusAccepted, r.Status, string(r.Body))
	}
	p.waitDocument(admin, docAllowed, "succeeded")
	p.waitDocument(admin, docForbidden, "succeeded")
	return admin, target
}

func mentionsForbidden(c apifuzz.Case) bool {
	s := c.Path + "?" + c.Query.Encode() + " " + string(c.Body)
	return strings.Contains(s, corpusForbidden) || strings.Contains(s, docForbidden)
}

// sendCase sends a generated request and reads the whole answer (a run's stream too).
func sendCase(t *testing.T, p *platform, c apifuzz.Case) response {
	t.Helper()
	u := p.HTTP + c.Path
	if len(c.Query) > 0 {
		u += "?" + c.Query.Encode()
	}
	req, err := http.NewRequest(c.Method, u, bytes.NewReader(c.Body))
	require.NoError(t, err)
	req.Header = c.Header.Clone()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	out := response{Status: res.StatusCode, Header: res.Header, Body: b}
	_ = json.Unmarshal(b, &out.JSON)
	return out
}

// settle waits until the allowed document is not being ingested, so that the next route
// finds it in the same state in both tenants.
func settle(t *testing.T, p *platform, admin string) {
	t.Helper()
	require.Eventually(t, func() bool {
		r := p.do(http.MethodGet, "/v1/documents/"+docAllowed, admin, "")
		if r.Status == http.StatusNotFound {
			return true
		}
		d, _ := r.data()["document"].(map[string]any)
		return d["status"] == "succeeded" || d["status"] == "failed"
	}, 20*time.Second, 20*time.Millisecond)
}

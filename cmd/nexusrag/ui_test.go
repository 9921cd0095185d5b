package main_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// items are data.items of a list answer, and its page.
func (r response) items() ([]map[string]any, map[string]any) {
	raw, _ := r.data()["items"].([]any)
	var out []map[string]any
	for _, it := range raw {
		out = append(out, it.(map[string]any))
	}
	page, _ := r.data()["page"].(map[string]any)
	return out, page
}

// TestUIBackend: the BFF's screens and list conventions through the built binary.
func TestUIBackend(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t-ui", "admin")
	_, reader := p.createKey("t-ui", "reader")
	_, otherAdmin := p.createKey("t-other", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true, "name": "Docs"}`).Status)
	add := func(i int) {
		r := p.do(http.MethodPost, "/v1/documents/text", admin, fmt.Sprintf(`{"corpus_id": "c1", "document_id": "doc-%02d", "text": "text %d", "filename": "f-%02d.txt"}`, i, i, i%7))
		require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	}
	for i := range 30 {
		add(i)
	}

	r := p.do(http.MethodGet, "/v1/ui/bootstrap", reader, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "t-ui", r.data()["tenant_id"])
	require.Equal(t, "reader", r.data()["role"])
	require.Equal(t, "enterprise", r.data()["plan_id"])
	require.Contains(t, r.data()["features"], "feature.tts")
	require.Equal(t, "c1", r.data()["corpora"].([]any)[0].(map[string]any)["corpus_id"])
	require.EqualValues(t, 100, r.data()["limits"].(map[string]any)["max_page_size"])

	r = p.do(http.MethodGet, "/v1/ui/dashboard/summary", reader, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.EqualValues(t, 30, r.data()["documents_total"])
	require.EqualValues(t, 1, r.data()["corpora"])

	// Paging while rows are added neither skips nor repeats a row.
	seen := map[string]int{}
	cursor, added := "", 30
	for pages := 0; ; pages++ {
		r = p.do(http.MethodGet, "/v1/ui/documents?limit=7&sort=-created_at&cursor="+url.QueryEscape(cursor), reader, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		items, page := r.items()
		for _, it := range items {
			seen[it["document_id"].(string)]++
		}
		add(added) // newer than every row listed: before the cursor
		added++
		if page["has_more"] != true {
			require.Empty(t, page["next_cursor"])
			break
		}
		cursor = page["next_cursor"].(string)
		require.Less(t, pages, 10)
	}
	for i := range 30 {
		require.Equal(t, 1, seen[fmt.Sprintf("doc-%02d", i)], "doc-%02d listed once", i)
	}
	for id, n := range seen {
		require.Equal(t, 1, n, "%s listed once", id)
	}
	facets := r.data()["facets"].(map[string]any)["status"].([]any)
	require.NotEmpty(t, facets)
	require.Contains(t, facets[0], "count")

	// Sort on two keys, q, filters.
	r = p.do(http.MethodGet, "/v1/ui/documents?sort=filename,-document_id&limit=3&q=DOC-0", reader, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	items, page := r.items()
	require.Len(t, items, 3)
	require.Equal(t, true, page["has_more"])
	require.Equal(t, "f-00.txt", items[0]["filename"])
	require.Equal(t, "doc-07", items[0]["document_id"], "filename f-00 is doc-00 and doc-07; -document_id puts doc-07 first")
	for _, c := range []struct{ query, param string }{
		{"sort=bogus", "sort"}, {"sort=name,name", "sort"}, {"limit=101", "limit"}, {"status=done", "status"},
		{"created_from=yesterday", "created_from"}, {"created_to=2026-13-01T00:00:00Z", "created_to"},
	} {
		r = p.do(http.MethodGet, "/v1/ui/documents?"+c.query, reader, "")
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", c.query, r.Body)
		require.Equal(t, c.param, r.fieldOf(), c.query)
	}

	// A cursor is bound to its list, tenant, filters and sort, and signed.
	r = p.do(http.MethodGet, "/v1/ui/documents?limit=2", reader, "")
	_, page = r.items()
	good := page["next_cursor"].(string)
	for name, c := range map[string]struct{ key, query string }{
		"tampered":       {reader, "limit=2&cursor=" + url.QueryEscape(strings.Replace(good, good[3:4], map[bool]string{true: "A", false: "B"}[good[3:4] != "A"], 1))},
		"other filters":  {reader, "limit=2&status=queued&cursor=" + url.QueryEscape(good)},
		"another tenant": {otherAdmin, "limit=2&cursor=" + url.QueryEscape(good)},
		"garbage":        {reader, "cursor=abc"},
	} {
		r = p.do(http.MethodGet, "/v1/ui/documents?"+c.query, c.key, "")
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", name, r.Body)
		require.Equal(t, "INVALID_CURSOR", r.errorCode(), name)
	}
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/ui/documents?limit=5&cursor="+url.QueryEscape(good), reader, "").Status, "a page may change size")

	// Activity: admins with the audit feature; paged the same way.
	r = p.do(http.MethodGet, "/v1/ui/activity?limit=3&actor_type=api_key", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	items, page = r.items()
	require.Len(t, items, 3)
	require.Equal(t, "api_key", items[0]["actor_type"])
	r = p.do(http.MethodGet, "/v1/ui/activity?limit=3&actor_type=api_key&cursor="+url.QueryEscape(page["next_cursor"].(string)), admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	next, _ := r.items()
	require.NotEqual(t, items[0]["id"], next[0]["id"])
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/ui/activity", reader, "").Status)
	for _, c := range []struct{ query, param string }{{"actor_type=robot", "actor_type"}, {"sort=created_at", "sort"}, {"limit=0x", ""}} {
		r = p.do(http.MethodGet, "/v1/ui/activity?"+c.query, admin, "")
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", c.query, r.Body)
		if c.param != "" {
			require.Equal(t, c.param, r.fieldOf(), c.query)
		}
	}

	// An action: accepted, with its optimistic patch and where to poll.
	p.waitDocument(admin, "doc-01", "succeeded")
	r = p.do(http.MethodPost, "/v1/ui/actions/reindex-document", admin, `{"document_id": "doc-01"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "accepted", r.data()["status"])
	require.NotEmpty(t, r.data()["action_id"])
	require.NotEmpty(t, r.data()["accepted_at"])
	require.Equal(t, map[string]any{"entity": "document", "id": "doc-01", "patch": map[string]any{"status": "queued"}}, r.data()["optimistic"])
	require.Equal(t, "/v1/documents/doc-01", r.data()["poll_url"])
	require.Equal(t, http.StatusNotFound, p.do(http.MethodPost, "/v1/ui/actions/reindex-document", admin, `{"document_id": "nope"}`).Status)
	require.Equal(t, http.StatusForbidden, p.do(http.MethodPost, "/v1/ui/actions/reindex-document", reader, `{"document_id": "doc-01"}`).Status)
}

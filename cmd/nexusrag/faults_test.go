package main_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// TestRedisStoppedMidTraffic: the platform keeps serving what does not need Redis, the
// rate limiter fails open (degraded), documents accepted while Redis is down are not
// lost, and everything recovers without a restart when Redis returns.
func TestRedisStoppedMidTraffic(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := startPlatform(t, []string{"REDIS_URL=" + srv.URL(), "RL_ENABLED=true", "RL_READ_KEY=1000/1000", "RL_MUTATION_KEY=1000/1000",
		"RL_MUTATION_TENANT=1000/1000", "RL_READ_TENANT=1000/1000", "RL_TIMEOUT=200ms", "INGEST_REQUEUE_GRACE=200ms", "INGEST_CLAIM_TIMEOUT=3s", "INGEST_REQUEUE_AFTER=3s"})
	_, key := p.createKey("t1", "editor")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", key, `{"allow_missing":true}`).Status)
	post := func(id string) response {
		return p.do(http.MethodPost, "/v1/documents/text", key, fmt.Sprintf(`{"corpus_id":"c1","document_id":%q,"text":"document %s"}`, id, id))
	}
	for i := range 3 {
		require.Equal(t, http.StatusAccepted, post(fmt.Sprintf("before-%d", i)).Status)
	}

	srv.Stop()
	for i := range 3 {
		r := post(fmt.Sprintf("during-%d", i))
		require.Equal(t, http.StatusAccepted, r.Status, "documents are still accepted: Postgres keeps them (%s)", r.Body)
		require.Equal(t, "degraded", r.Header.Get("X-RateLimit-Status"))
	}
	r := p.do(http.MethodGet, "/v1/corpora", key, "")
	require.Equal(t, http.StatusOK, r.Status, "reads need no Redis")

	srv.Start()
	for _, id := range []string{"before-0", "before-1", "before-2", "during-0", "during-1", "during-2"} {
		p.waitDocument(key, id, "succeeded")
	}
	r = p.do(http.MethodGet, "/v1/corpora", key, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Empty(t, r.Header.Get("X-RateLimit-Status"), "the limiter is back without a restart")
}

// TestPostgresConnectionLoss cuts the platform off its database: requests fail with 503
// DEPENDENCY_UNAVAILABLE (never 500) during the loss and succeed afterwards without a
// restart.
func TestPostgresConnectionLoss(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, key := p.createKey("t1", "editor")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", key, `{"allow_missing":true}`).Status)
	db := dbName(p.dbURL)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL()) // on another database: it survives the cut
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close(ctx) })
	cut := func(allow bool) {
		_, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", db, allow))
		require.NoError(t, err)
		if !allow {
			_, err = admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db)
			require.NoError(t, err)
		}
	}
	t.Cleanup(func() { cut(true) })

	cut(false)
	for range 5 {
		r := p.do(http.MethodGet, "/v1/corpora", key, "")
		require.Equal(t, http.StatusServiceUnavailable, r.Status, string(r.Body))
		require.Equal(t, "DEPENDENCY_UNAVAILABLE", r.errorCode())
	}
	r := p.do(http.MethodGet, "/v1/auth/whoami", key, "")
	require.Equal(t, http.StatusOK, r.Status, "authentication works from the key cache meanwhile")

	cut(true)
	require.Eventually(t, func() bool { return p.do(http.MethodGet, "/v1/corpora", key, "").Status == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "recovers without a restart")
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", key, `{"corpus_id":"c1","text":"after the loss"}`).Status)
}

func dbName(url string) string {
	name := url[strings.LastIndex(url, "/")+1:]
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	return name
}

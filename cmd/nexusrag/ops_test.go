package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// TestOpsCountEveryReplica: two gateways count requests into the same minutes; the SLO
// and the metrics of either sum both. Ops is admin-only and needs feature.ops_admin_access.
func TestOpsCountEveryReplica(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "REQUEST_STATS_FLUSH_INTERVAL=100ms")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	b := startWithEnv(t, env, dbURL)
	_, admin := a.createKey("t-ops", "admin")
	_, reader := a.createKey("t-ops", "reader")
	_, freeAdmin := a.createKey("t-free", "admin")
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/admin/plans/t-free", freeAdmin, `{"plan_id": "free"}`).Status)

	for range 10 {
		require.Equal(t, http.StatusOK, a.do(http.MethodGet, "/v1/corpora", reader, "").Status)
	}
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true}`).Status)
	res, events := a.runStream(reader, `{"session_id": "s1", "corpus_id": "c1", "message": "hello"}`)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "done", events[len(events)-1].Type)
	for range 30 {
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/corpora", reader, "").Status)
	}
	var r response
	require.Eventually(t, func() bool {
		r = a.do(http.MethodGet, "/v1/ops/metrics?window_minutes=5", admin, "")
		read, _ := r.data()["route_classes"].(map[string]any)["read"].(map[string]any)
		return r.Status == http.StatusOK && read["count"] == "40"
	}, 5*time.Second, 50*time.Millisecond, "both replicas' reads: %s", r.Body)
	read := r.data()["route_classes"].(map[string]any)["read"].(map[string]any)
	require.Equal(t, "0", read["errors"])
	require.Positive(t, read["p95_ms"])
	require.Contains(t, r.data()["breakers"], "bedrock")
	require.Eventually(t, func() bool {
		r = a.do(http.MethodGet, "/v1/ops/metrics", admin, "")
		runs, _ := r.data()["runs"].(map[string]any)
		return runs["started"] == "1" && runs["completed"] == "1" && runs["errored"] == "0" && runs["open"] == "0"
	}, 5*time.Second, 50*time.Millisecond, "the run stream was counted: %s", r.Body)
	require.Eventually(t, func() bool {
		r = a.do(http.MethodGet, "/v1/ops/metrics", admin, "")
		run, _ := r.data()["bulkheads"].(map[string]any)["run"].(map[string]any)
		ingest, _ := r.data()["bulkheads"].(map[string]any)["ingest"].(map[string]any)
		return run["capacity"] == "512" && run["in_use"] == "0" && ingest["capacity"] == "128"
	}, 5*time.Second, 50*time.Millisecond, "both replicas' bulkheads (RUN_MAX_CONCURRENCY 256, INGEST_MAX_CONCURRENCY 64 each): %s", r.Body)

	r = b.do(http.MethodGet, "/v1/ops/slo", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	slo := r.data()
	require.Equal(t, "1h", slo["window"])
	require.EqualValues(t, 100, slo["availability"])
	require.Equal(t, "healthy", slo["status"], "%s", r.Body)
	require.EqualValues(t, 100, slo["error_budget"].(map[string]any)["remaining_pct"])
	for _, group := range []string{"run", "api", "documents_text"} {
		require.Contains(t, slo["p95"], group)
		require.Contains(t, slo["objectives"], "p95_"+group)
	}

	r = a.do(http.MethodGet, "/v1/ops/health", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "ok", r.data()["dependencies"].(map[string]any)["redis"].(map[string]any)["status"])
	require.Contains(t, r.data(), "queue_depth")

	r = a.upload(admin, map[string]string{"corpus_id": "c1", "document_id": "d1"}, "d1.txt", "text/plain", "Release gates hold the line.")
	require.Equal(t, http.StatusAccepted, r.Status, "%s", r.Body)
	a.waitDocument(admin, "d1", "succeeded")
	r = b.do(http.MethodGet, "/v1/ops/ingestion?hours=24", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "1", r.data()["succeeded"], "%s", r.Body)
	require.Equal(t, "1", r.data()["documents_by_status"].(map[string]any)["succeeded"])
	require.Equal(t, "0", r.data()["dead_letters"])
	r = b.do(http.MethodGet, "/v1/ops/ingestion?hours=500", admin, "")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "hours", r.fieldOf())

	require.Equal(t, http.StatusBadRequest, a.do(http.MethodGet, "/v1/ops/metrics?window_minutes=0x", admin, "").Status)
	r = a.do(http.MethodGet, "/v1/ops/metrics?window_minutes=5000", admin, "")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "window_minutes", r.fieldOf())
	require.Equal(t, http.StatusForbidden, a.do(http.MethodGet, "/v1/ops/slo", reader, "").Status, "admin only")
	r = a.do(http.MethodGet, "/v1/ops/health", freeAdmin, "")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "feature.ops_admin_access", r.featureKey())
	require.Eventually(t, func() bool {
		return len(a.auditEvents(admin, "event_type=ops.viewed")) >= 4
	}, 5*time.Second, 50*time.Millisecond, "every ops call is audited")
}

// TestOpsHealthSaysWhatIsDegraded: with Redis down, /v1/ops/health still answers 200
// and names Redis; /v1/health keeps its meaning (503).
func TestOpsHealthSaysWhatIsDegraded(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	p := startPlatform(t, []string{"REDIS_URL=" + srv.URL(), "INGEST_CLAIM_TIMEOUT=3s", "INGEST_REQUEUE_AFTER=3s"})
	_, admin := p.createKey("t1", "admin")
	var r response
	require.Eventually(t, func() bool {
		r = p.do(http.MethodGet, "/v1/ops/health", admin, "")
		return r.Status == http.StatusOK && r.data()["status"] == "ok"
	}, 10*time.Second, 50*time.Millisecond, "the worker reports: %s", r.Body)
	require.Equal(t, "0", r.data()["queue_depth"], "int64 is a string in JSON")
	require.Less(t, r.data()["worker_heartbeat_age_s"], 3.0)

	srv.Stop()
	r = p.do(http.MethodGet, "/v1/ops/health", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "degraded", r.data()["status"])
	require.Equal(t, "degraded", r.data()["dependencies"].(map[string]any)["redis"].(map[string]any)["status"])
	require.Nil(t, r.data()["queue_depth"], "Redis cannot tell")
	require.Equal(t, "degraded", r.data()["worker"].(map[string]any)["status"])
	require.Equal(t, http.StatusServiceUnavailable, p.do(http.MethodGet, "/v1/health", "", "").Status)
	srv.Start()
}

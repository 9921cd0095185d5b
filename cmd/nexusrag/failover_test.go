package main_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWriteFreeze: an operator's freeze makes every write route of the region answer 503
// WRITES_FROZEN while reads go on, within a sync interval, and unfreezing lifts it; a
// secondary region refuses writes from the start.
func TestWriteFreeze(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "PLATFORM_ADMIN_TENANTS=t-op", "WRITE_GATE_SYNC_INTERVAL=100ms", "REGION_ID=eu-1")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	p := startWithEnv(t, env, dbURL)
	_, op := p.createKey("t-op", "admin")
	_, tenantAdmin := p.createKey("t-x", "admin")
	write := func() response { return p.do(http.MethodPatch, "/v1/corpora/c1", op, `{"allow_missing": true}`) }

	r := p.do(http.MethodGet, "/v1/ops/failover/status", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "eu-1", r.data()["region_id"])
	require.Equal(t, "primary", r.data()["role"])
	require.Equal(t, "idle", r.data()["state"])
	require.Equal(t, true, r.data()["writes_allowed"])
	require.Equal(t, false, r.data()["database_in_recovery"])
	require.Equal(t, http.StatusOK, write().Status)

	require.Equal(t, http.StatusForbidden, p.do(http.MethodPatch, "/v1/ops/failover/freeze-writes", tenantAdmin, `{"freeze": true, "reason": "x"}`).Status,
		"a tenant's admin is not the platform's")
	r = p.do(http.MethodPatch, "/v1/ops/failover/freeze-writes", op, `{"freeze": true}`)
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "reason", r.fieldOf())
	r = p.do(http.MethodPatch, "/v1/ops/failover/freeze-writes", op, `{"freeze": true, "reason": "database maintenance"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, false, r.data()["status"].(map[string]any)["writes_allowed"])

	require.Eventually(t, func() bool { return write().Status == http.StatusServiceUnavailable }, 5*time.Second, 20*time.Millisecond)
	r = write()
	require.Equal(t, "WRITES_FROZEN", r.errorCode())
	require.Equal(t, "30", r.Header.Get("Retry-After"))
	require.Contains(t, r.JSON["error"].(map[string]any)["message"], "writes are frozen: database maintenance")
	res, _ := p.runStream(op, `{"session_id": "s", "corpus_id": "c1", "message": "hello"}`)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "a run writes its session")
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/corpora", op, "").Status, "reads go on")
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/ops/failover/status", op, "").Status)

	r = p.do(http.MethodPatch, "/v1/ops/failover/freeze-writes", op, `{"freeze": false}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Eventually(t, func() bool { return write().Status == http.StatusOK }, 5*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		return len(p.auditEvents(op, "event_type=failover.write_freeze_changed")) == 2
	}, 5*time.Second, 50*time.Millisecond)
}

func TestSecondaryRegionRefusesWrites(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"REGION_ID=us-2", "REGION_ROLE=secondary", "WRITE_GATE_SYNC_INTERVAL=100ms"})
	_, admin := p.createKey("t1", "admin")
	var r response
	require.Eventually(t, func() bool {
		r = p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true}`)
		return r.Status == http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "WRITES_FROZEN", r.errorCode())
	require.True(t, strings.Contains(r.JSON["error"].(map[string]any)["message"].(string), "us-2 is a secondary"), "%s", r.Body)
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/corpora", admin, "").Status)
	s := p.do(http.MethodGet, "/v1/ops/failover/status", admin, "")
	require.Equal(t, "secondary", s.data()["role"])
	require.Equal(t, false, s.data()["writes_allowed"])
}

func TestPrimaryWithoutStandbyRefusesWritesWhenAsked(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"WRITE_FREEZE_ON_UNHEALTHY_REPLICA=true", "WRITE_GATE_SYNC_INTERVAL=100ms"})
	_, admin := p.createKey("t1", "admin")
	var r response
	require.Eventually(t, func() bool {
		r = p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true}`)
		return r.Status == http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond, "the test server's PostgreSQL has no standby")
	require.Contains(t, r.JSON["error"].(map[string]any)["message"], "no standby streams")
}

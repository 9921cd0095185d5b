package main_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaintenanceTasks: each task runs on demand in the service that owns it, for platform
// admins only; an unknown task is 400.
func TestMaintenanceTasks(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "PLATFORM_ADMIN_TENANTS=t-op", "AUDIT_RETENTION_DAYS=30")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	p := startWithEnv(t, env, dbURL)
	_, op := p.createKey("t-op", "admin")
	_, tenantAdmin := p.createKey("t-x", "admin")
	// Two audit events from long ago: the api keys' creation, backdated.
	tag, err := p.DB().Exec(context.Background(), `UPDATE governance.audit_events SET occurred_at = now() - interval '90 days'`)
	require.NoError(t, err)
	require.Positive(t, tag.RowsAffected())

	r := p.do(http.MethodPost, "/v1/admin/maintenance/run?task=prune_audit", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	run := r.data()["run"].(map[string]any)
	require.Equal(t, "governance", run["owner"])
	require.Equal(t, "prune_audit", run["task"])
	require.EqualValues(t, tag.RowsAffected(), mustInt(t, run["affected"]))
	require.Contains(t, run["detail"], "AUDIT_RETENTION_DAYS (30 days)")

	for task, owner := range map[string]string{"prune_idempotency": "gateway", "cleanup_actions": "ui", "prune_usage": "billing"} {
		r = p.do(http.MethodPost, "/v1/admin/maintenance/run?task="+task, op, "")
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", task, r.Body)
		require.Equal(t, owner, r.data()["run"].(map[string]any)["owner"])
	}
	for _, task := range []string{"backup_create_scheduled", "restore_drill_scheduled", "backup_prune_retention"} {
		r = p.do(http.MethodPost, "/v1/admin/maintenance/run?task="+task, op, "")
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", task, r.Body)
		require.Equal(t, "failover", r.data()["run"].(map[string]any)["owner"])
	}
	r = p.do(http.MethodPost, "/v1/admin/maintenance/run?task=vacuum", op, "")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "task", r.fieldOf())
	r = p.do(http.MethodPost, "/v1/admin/maintenance/run?task=prune_audit", tenantAdmin, "")
	require.Equal(t, http.StatusForbidden, r.Status, "a tenant's admin is not the platform's")
}

func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	var n int64
	switch x := v.(type) {
	case string: // int64 fields are JSON strings
		_, err := fmt.Sscan(x, &n)
		require.NoError(t, err)
	case float64:
		n = int64(x)
	}
	return n
}

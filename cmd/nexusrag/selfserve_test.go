package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/audit"
)

// fieldOf is details.field of an error answer.
func (r response) fieldOf() string {
	e, _ := r.JSON["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	s, _ := d["field"].(string)
	return s
}

// TestSelfServe: a tenant's admin manages its keys, reads its usage and plan, asks for
// an upgrade and tests the billing webhook, through the built binary; each is audited.
func TestSelfServe(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events []string
	rcv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev struct{ Type string }
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		events = append(events, ev.Type)
		mu.Unlock()
	}))
	t.Cleanup(rcv.Close)
	p := startPlatform(t, []string{"DEFAULT_PLAN_ID=free", "BILLING_WEBHOOK_ENABLED=true", "BILLING_WEBHOOK_URL=" + rcv.URL,
		"BILLING_WEBHOOK_SECRET=whsec-selfserve-0123456789", "BILLING_WEBHOOK_POLL_INTERVAL=50ms"})
	_, admin := p.createKey("t-s", "admin")
	_, reader := p.createKey("t-s", "reader")
	_, otherAdmin := p.createKey("t-other", "admin")

	// Keys.
	r := p.do(http.MethodPost, "/v1/self-serve/api-keys", admin, `{"name": "ci", "role": "editor"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	secret, _ := r.data()["secret"].(string)
	keyID, _ := r.data()["api_key"].(map[string]any)["key_id"].(string)
	require.True(t, strings.HasPrefix(secret, "nrk_"), "%s", r.Body)
	who := p.do(http.MethodGet, "/v1/auth/whoami", secret, "")
	require.Equal(t, http.StatusOK, who.Status)
	require.Equal(t, "editor", who.data()["role"])
	require.Equal(t, "t-s", who.data()["tenant_id"])
	for _, c := range []struct{ body, field string }{
		{`{"name": "x", "role": "owner"}`, "role"},
		{`{"name": "", "role": "reader"}`, "name"},
	} {
		r := p.do(http.MethodPost, "/v1/self-serve/api-keys", admin, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, c.field, r.fieldOf())
	}
	require.Equal(t, http.StatusForbidden, p.do(http.MethodPost, "/v1/self-serve/api-keys", reader, `{"name": "x", "role": "admin"}`).Status, "admin only")
	r = p.do(http.MethodGet, "/v1/self-serve/api-keys", admin, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Contains(t, string(r.Body), keyID)
	require.NotContains(t, string(r.Body), secret, "no secrets in the list")
	require.NotContains(t, string(p.do(http.MethodGet, "/v1/self-serve/api-keys", otherAdmin, "").Body), keyID, "another tenant's list")
	require.Equal(t, http.StatusNotFound, p.do(http.MethodPost, "/v1/self-serve/api-keys/"+keyID+"/revoke", otherAdmin, "").Status,
		"another tenant's key is not found")
	for range 2 { // idempotent
		r = p.do(http.MethodPost, "/v1/self-serve/api-keys/"+keyID+"/revoke", admin, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.NotEmpty(t, r.data()["api_key"].(map[string]any)["revoked_at"])
	}
	require.Eventually(t, func() bool {
		return p.do(http.MethodGet, "/v1/auth/whoami", secret, "").Status == http.StatusUnauthorized
	}, 5*time.Second, 50*time.Millisecond, "the revoked key is refused")

	// Usage.
	r = p.do(http.MethodGet, "/v1/self-serve/usage/summary?window_days=30", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.EqualValues(t, 30, r.data()["window_days"])
	require.NotEqual(t, "0", r.data()["requests"], "%s", r.Body)
	require.Equal(t, "1000", r.data()["quota"].(map[string]any)["quota"].(map[string]any)["daily_requests_limit"], "free's daily quota")
	r = p.do(http.MethodGet, "/v1/self-serve/usage/timeseries?metric=requests&granularity=hour&days=1", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	points, _ := r.data()["points"].([]any)
	require.Len(t, points, time.Now().UTC().Hour()+1, "every hour of today so far")
	r = p.do(http.MethodGet, "/v1/self-serve/usage/timeseries?metric=requests&granularity=day&days=30", admin, "")
	require.Len(t, r.data()["points"], 30)
	for _, c := range []struct{ query, field string }{
		{"/v1/self-serve/usage/summary?window_days=999", "window_days"},
		{"/v1/self-serve/usage/timeseries?metric=cost", "metric"},
		{"/v1/self-serve/usage/timeseries?granularity=week", "granularity"},
		{"/v1/self-serve/usage/timeseries?days=91", "days"},
	} {
		r := p.do(http.MethodGet, c.query, admin, "")
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", c.query, r.Body)
		require.Equal(t, c.field, r.fieldOf(), c.query)
	}

	// Plan, upgrade request, webhook test.
	r = p.do(http.MethodGet, "/v1/self-serve/plan", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "free", r.data()["plan"].(map[string]any)["plan_id"])
	r = p.do(http.MethodPost, "/v1/self-serve/billing/webhook-test", admin, "")
	require.Equal(t, http.StatusForbidden, r.Status, "%s", r.Body)
	require.Equal(t, "feature.billing_webhook_test", r.featureKey())
	for _, c := range []struct{ body, field string }{
		{`{"target_plan": "free"}`, "target_plan"},
		{`{"target_plan": "gold"}`, "target_plan"},
		{`{"target_plan": "pro", "reason": "` + strings.Repeat("x", 1001) + `"}`, "reason"},
	} {
		r := p.do(http.MethodPost, "/v1/self-serve/plan/upgrade-request", admin, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, c.field, r.fieldOf())
	}
	r = p.do(http.MethodPost, "/v1/self-serve/plan/upgrade-request", admin, `{"target_plan": "pro", "reason": "we need speech"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "pending", r.data()["upgrade_request"].(map[string]any)["status"])

	// The operator grants it; the webhook test is then allowed.
	r = p.do(http.MethodPatch, "/v1/admin/plans/t-s", admin, `{"plan_id": "pro"}`)
	require.Equal(t, http.StatusOK, r.Status)
	require.Eventually(t, func() bool {
		r = p.do(http.MethodPost, "/v1/self-serve/billing/webhook-test", admin, "")
		return r.Status == http.StatusOK
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, true, r.data()["delivered"], "%s", r.Body)
	require.EqualValues(t, 200, r.data()["status_code"])
	r = p.do(http.MethodGet, "/v1/self-serve/plan", admin, "")
	require.Equal(t, "granted", r.data()["upgrade_requests"].([]any)[0].(map[string]any)["status"])
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(events, " "), "plan.upgrade_requested") && strings.Contains(strings.Join(events, " "), "plan.changed")
	}, 10*time.Second, 50*time.Millisecond, "the upgrade request and the plan change reach the webhook")

	for _, typ := range []string{audit.TypeSelfServeKeyCreated, audit.TypeSelfServeKeysListed, audit.TypeSelfServeKeyRevoked,
		audit.TypeSelfServeUsageViewed, audit.TypeSelfServePlanViewed, audit.TypeUpgradeRequested, audit.TypeSelfServeWebhookTested} {
		require.Eventually(t, func() bool { return len(p.auditEvents(admin, "event_type="+typ)) > 0 }, 5*time.Second, 50*time.Millisecond, typ)
	}
	for _, ev := range p.auditEvents(admin, "limit=200") {
		raw, _ := json.Marshal(ev)
		require.NotContains(t, string(raw), secret, "the created key's secret is in no audit row")
	}
}

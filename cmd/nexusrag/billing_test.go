package main_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// featureKey is details.feature_key of an error answer.
func (r response) featureKey() string {
	e, _ := r.JSON["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	s, _ := d["feature_key"].(string)
	return s
}

const (
	bedrockConfig = `{"allow_missing": true, "provider_config_json": {"retrieval": {"provider": "aws_bedrock_kb", "knowledge_base_id": "KB1", "region": "eu-west-1"}}}`
	vertexConfig  = `{"allow_missing": true, "provider_config_json": {"retrieval": {"provider": "gcp_vertex", "project": "my-project-1", "location": "global", "resource_id": "ds1"}}}`
)

// TestPlanMatrixAtTheEdge: the plan matrix, as one table over the enforcement points,
// through the built binary. A refusal is 403 FEATURE_NOT_ENABLED naming the feature.
func TestPlanMatrixAtTheEdge(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"DEFAULT_PLAN_ID=free"})
	keys := map[string]string{}
	for _, plan := range []string{"free", "pro", "enterprise"} {
		tenant := "t-" + plan
		_, keys[plan] = p.createKey(tenant, "admin")
		if plan != "free" { // free is the default: nothing to assign
			r := p.do(http.MethodPatch, "/v1/admin/plans/"+tenant, keys[plan], fmt.Sprintf(`{"plan_id": %q}`, plan))
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		}
		r := p.do(http.MethodPatch, "/v1/corpora/docs", keys[plan], `{"allow_missing": true, "name": "Docs"}`)
		require.Equal(t, http.StatusOK, r.Status, "a local corpus on every plan: %s", r.Body)
	}
	type want struct {
		status  int
		feature string // the refused feature, when refused
	}
	ok := want{status: http.StatusOK}
	no := func(feature string) want { return want{http.StatusForbidden, feature} }
	for _, tt := range []struct {
		point                 string
		method, path, body    string
		free, pro, enterprise want
	}{
		{"audit log", http.MethodGet, "/v1/audit/events?limit=1", "",
			no("feature.audit_access"), ok, ok},
		{"Bedrock corpus", http.MethodPatch, "/v1/corpora/kb", bedrockConfig,
			no("feature.retrieval.aws_bedrock_kb"), no("feature.retrieval.aws_bedrock_kb"), ok},
		{"Vertex corpus", http.MethodPatch, "/v1/corpora/vx", vertexConfig,
			no("feature.retrieval.gcp_vertex"), ok, ok},
		{"speech", http.MethodPost, "/v1/run", `{"session_id": "s", "corpus_id": "docs", "message": "hello", "audio": true}`,
			no("feature.tts"), ok, ok},
		{"local retrieval", http.MethodPost, "/v1/run", `{"session_id": "s", "corpus_id": "docs", "message": "hello"}`,
			ok, ok, ok},
	} {
		for plan, w := range map[string]want{"free": tt.free, "pro": tt.pro, "enterprise": tt.enterprise} {
			r := p.do(tt.method, tt.path, keys[plan], tt.body)
			require.Equal(t, w.status, r.Status, "%s on %s: %s", tt.point, plan, r.Body)
			if w.feature != "" {
				require.Equal(t, "FEATURE_NOT_ENABLED", r.errorCode(), "%s on %s", tt.point, plan)
				require.Equal(t, w.feature, r.featureKey(), "%s on %s", tt.point, plan)
			}
		}
	}

	// Changing a corpus's provider needs feature.corpora_patch_provider_config: pro has it
	// unless an override withdraws it. (A change reaches the checks within 5 s.)
	r := p.do(http.MethodPatch, "/v1/admin/plans/t-pro/overrides", keys["pro"], `{"feature_key": "feature.corpora_patch_provider_config", "enabled": false}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	attempt := 0
	require.Eventually(t, func() bool { // a new corpus each time: one made before the change is Vertex already
		attempt++
		r = p.do(http.MethodPatch, fmt.Sprintf("/v1/corpora/new-%d", attempt), keys["pro"], vertexConfig)
		return r.Status == http.StatusForbidden
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "feature.corpora_patch_provider_config", r.featureKey())

	// A Bedrock corpus whose tenant moves to a plan without Bedrock is refused on every
	// retrieval, the run's included, before its stream starts.
	r = p.do(http.MethodPatch, "/v1/admin/plans/t-enterprise", keys["enterprise"], `{"plan_id": "pro"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Eventually(t, func() bool {
		r = p.do(http.MethodPost, "/v1/run", keys["enterprise"], `{"session_id": "s", "corpus_id": "kb", "message": "hello"}`)
		return r.Status == http.StatusForbidden
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "feature.retrieval.aws_bedrock_kb", r.featureKey())
}

// TestPlansAreTheirTenantsOwn: every billing route is admin-only and scoped to the
// caller's tenant; another tenant's is FORBIDDEN, whether it exists or not.
func TestPlansAreTheirTenantsOwn(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"DEFAULT_PLAN_ID=free"})
	_, admin1 := p.createKey("t1", "admin")
	_, admin2 := p.createKey("t2", "admin")
	_, reader1 := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/admin/plans/t2", admin2, `{"plan_id": "pro"}`).Status)

	r := p.do(http.MethodGet, "/v1/admin/plans", admin1, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "free", r.data()["default_plan_id"])
	require.Len(t, r.data()["plans"], 3)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/admin/plans/t2", ""},
		{http.MethodGet, "/v1/admin/plans/t9", ""},
		{http.MethodPatch, "/v1/admin/plans/t2", `{"plan_id": "free"}`},
		{http.MethodPatch, "/v1/admin/plans/t2/overrides", `{"feature_key": "feature.tts", "enabled": false}`},
	} {
		r := p.do(c.method, c.path, admin1, c.body)
		require.Equal(t, http.StatusForbidden, r.Status, "%s %s: %s", c.method, c.path, r.Body)
		require.Equal(t, "FORBIDDEN", r.errorCode())
		require.NotContains(t, string(r.Body), "pro", "nothing about t2 leaks")
	}
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/admin/plans/t1", reader1, "").Status, "admin only")
	r = p.do(http.MethodGet, "/v1/admin/plans/t2", admin2, "")
	require.Equal(t, "pro", r.data()["plan"].(map[string]any)["plan_id"], "t1's attempts changed nothing")

	for _, c := range []struct{ path, body, field string }{
		{"/v1/admin/plans/t1", `{"plan_id": "gold"}`, "plan_id"},
		{"/v1/admin/plans/t1/overrides", `{"feature_key": "feature.teleport", "enabled": true}`, "feature_key"},
	} {
		r := p.do(http.MethodPatch, c.path, admin1, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		d, _ := r.JSON["error"].(map[string]any)["details"].(map[string]any)
		require.Equal(t, c.field, d["field"])
	}
}

// TestPlanChangesReachEveryReplica: two gateways on one database; a plan changed
// through one is enforced by the other within 5 seconds.
func TestPlanChangesReachEveryReplica(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "DEFAULT_PLAN_ID=free")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	b := startWithEnv(t, env, dbURL)
	_, key := a.createKey("t1", "admin")
	require.Equal(t, http.StatusForbidden, b.do(http.MethodGet, "/v1/audit/events?limit=1", key, "").Status, "free: no audit log")

	changed := time.Now()
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/admin/plans/t1", key, `{"plan_id": "pro"}`).Status)
	require.Eventually(t, func() bool {
		return b.do(http.MethodGet, "/v1/audit/events?limit=1", key, "").Status == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond, "the other replica still refuses after 5s")
	t.Logf("upgrade enforced by the other replica after %s", time.Since(changed).Round(time.Millisecond))

	changed = time.Now()
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/admin/plans/t1", key, `{"plan_id": "free"}`).Status)
	require.Eventually(t, func() bool {
		return b.do(http.MethodGet, "/v1/audit/events?limit=1", key, "").Status == http.StatusForbidden
	}, 5*time.Second, 20*time.Millisecond, "the other replica still allows after 5s")
	t.Logf("downgrade enforced by the other replica after %s", time.Since(changed).Round(time.Millisecond))
}

// TestQuotasAtTheEdge: a quota set through the admin route is enforced by the gateway
// within 5 s; 50 concurrent requests at the hard cap admit exactly what is left; the
// usage route reports what was counted.
func TestQuotasAtTheEdge(t *testing.T) {
	t.Parallel()
	// RL_TIMEOUT: counting is exact only when Redis answers in time; past the timeout the
	// quota fails open (QUOTA_FAIL_MODE=open) and admits uncounted, which an overloaded
	// test machine (50 concurrent requests on 2 busy cores) can reach at the default 100ms.
	p := startPlatform(t, []string{"USAGE_ROLLUP_INTERVAL=1s", "RL_TIMEOUT=2s"})
	_, key := p.createKey("t-q", "admin")
	_, other := p.createKey("t-other", "admin")

	r := p.do(http.MethodGet, "/v1/corpora", key, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "100000", r.Header.Get("X-Quota-Day-Limit"), "enterprise's daily quota")
	require.Equal(t, "enforce", r.Header.Get("X-Quota-HardCap-Mode"))
	require.Equal(t, "false", r.Header.Get("X-Quota-SoftCap-Reached"))
	for _, h := range []string{"X-Quota-Day-Used", "X-Quota-Day-Remaining", "X-Quota-Month-Limit", "X-Quota-Month-Used", "X-Quota-Month-Remaining"} {
		require.NotEmpty(t, r.Header.Get(h), h)
	}
	require.Empty(t, p.do(http.MethodGet, "/healthz", "", "").Header.Get("X-Quota-Day-Used"), "health is not counted")

	r = p.do(http.MethodPatch, "/v1/admin/quotas/t-q", key, `{"daily_requests_limit": 300, "soft_cap_ratio": 0.5}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "tenant", r.data()["quota"].(map[string]any)["source"], "%s", r.Body)
	for _, c := range []struct{ body, field string }{
		{`{"daily_requests_limit": 0}`, "daily_requests_limit"},
		{`{"soft_cap_ratio": 2}`, "soft_cap_ratio"},
		{`{"monthly_requests_limit": "many"}`, ""},
	} {
		r := p.do(http.MethodPatch, "/v1/admin/quotas/t-q", key, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", c.body, r.Body)
		if c.field != "" {
			d, _ := r.JSON["error"].(map[string]any)["details"].(map[string]any)
			require.Equal(t, c.field, d["field"], "%s", r.Body)
		}
	}
	require.Equal(t, http.StatusForbidden, p.do(http.MethodPatch, "/v1/admin/quotas/t-q", other, `{"daily_requests_limit": 1}`).Status)
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/admin/usage/t-q", other, "").Status)

	require.Eventually(t, func() bool {
		r = p.do(http.MethodGet, "/v1/corpora", key, "")
		return r.Header.Get("X-Quota-Day-Limit") == "300"
	}, 5*time.Second, 50*time.Millisecond, "the new quota reaches the gateway")
	for r.Header.Get("X-Quota-Day-Remaining") != "30" { // down to 30 left
		r = p.do(http.MethodGet, "/v1/corpora", key, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	}
	const left = 30

	// 50 concurrent requests at the cap: exactly what is left passes.
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	var bodies sync.Map
	for range 50 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, p.HTTP+"/v1/corpora", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			switch res.StatusCode {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusPaymentRequired:
				refused.Add(1)
				bodies.Store(string(b), true)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, left, ok.Load(), "admitted: exactly the %d left", left)
	require.EqualValues(t, 50-left, refused.Load())
	require.Len(t, keys(&bodies), 1, "every refusal says the same")
	r = p.do(http.MethodGet, "/v1/corpora", key, "")
	require.Equal(t, http.StatusPaymentRequired, r.Status)
	require.JSONEq(t, `{"detail":{"code":"QUOTA_EXCEEDED","message":"Daily request quota exceeded","period":"day","limit":300,"used":300,"remaining":0}}`, string(r.Body))
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/corpora", other, "").Status, "another tenant's quota is its own")

	r = p.do(http.MethodGet, "/v1/admin/quotas/t-q", key, "")
	require.Equal(t, http.StatusOK, r.Status, "a tenant at its cap can still read and raise its quota: %s", r.Body)
	require.Empty(t, r.Header.Get("X-Quota-Day-Used"), "the billing routes are not counted")
	require.Equal(t, "300", r.data()["quota"].(map[string]any)["day_used"], "int64 is a string in JSON")

	// Observe mode lets the tenant through and says so.
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/admin/quotas/t-q", key, `{"hard_cap_enabled": false}`).Status)
	require.Eventually(t, func() bool {
		r = p.do(http.MethodGet, "/v1/corpora", key, "")
		return r.Status == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "observe", r.Header.Get("X-Quota-HardCap-Mode"))
	require.Equal(t, "true", r.Header.Get("X-Quota-SoftCap-Reached"))
	require.Equal(t, "0", r.Header.Get("X-Quota-Day-Remaining"))

	// The rollup reaches Postgres: the usage route reports today's count.
	today := time.Now().UTC().Format("2006-01-02")
	require.Eventually(t, func() bool {
		r = p.do(http.MethodGet, "/v1/admin/usage/t-q?period=day&start="+today, key, "")
		b, _ := r.data()["buckets"].([]any)
		if r.Status != http.StatusOK || len(b) == 0 {
			return false
		}
		n, _ := strconv.Atoi(fmt.Sprint(b[0].(map[string]any)["requests"]))
		return n >= 300
	}, 10*time.Second, 100*time.Millisecond, "%s", r.Body)
	r = p.do(http.MethodGet, "/v1/admin/usage/t-q?period=week", key, "")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Equal(t, "INVALID_ARGUMENT", r.errorCode())
	require.Eventually(t, func() bool {
		return len(p.auditEvents(key, "event_type=quota.hard_cap_blocked")) > 0
	}, 5*time.Second, 50*time.Millisecond, "the hard cap's refusals are audited (sampled)")
	require.Eventually(t, func() bool {
		return len(p.auditEvents(key, "event_type=quota.soft_cap_reached")) == 1
	}, 5*time.Second, 50*time.Millisecond, "the soft cap is audited once per period")
}

func keys(m *sync.Map) []any {
	var out []any
	m.Range(func(k, _ any) bool { out = append(out, k); return true })
	return out
}

package main_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// ruleKeyOf is details.rule_key of an error answer.
func (r response) ruleKeyOf() string {
	e, _ := r.JSON["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	s, _ := d["rule_key"].(string)
	return s
}

// TestPolicies: a tenant's rules, made through one replica, are enforced by the other
// within 5 s; first match by priority wins; the rules' own routes stay reachable.
func TestPolicies(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	b := startWithEnv(t, env, dbURL)
	adminID, admin := a.createKey("t-p", "admin")
	_, editor := a.createKey("t-p", "editor")
	_, other := a.createKey("t-q", "admin")

	changed := time.Now()
	r := a.do(http.MethodPost, "/v1/admin/governance/policies", admin, `{"rule_key": "freeze-deletes", "priority": 10,
		"condition_json": {"methods": ["DELETE"], "endpoint_prefix": "/v1/documents"},
		"action_json": {"type": "deny", "message": "deletes are frozen for the audit"}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	id := r.data()["policy"].(map[string]any)["policy_id"]
	require.Eventually(t, func() bool {
		r = b.do(http.MethodDelete, "/v1/documents/d1", editor, "")
		return r.Status == http.StatusForbidden
	}, 5*time.Second, 20*time.Millisecond, "the other replica enforces it: %s", r.Body)
	t.Logf("policy enforced by the other replica after %s", time.Since(changed).Round(time.Millisecond))
	require.Equal(t, "POLICY_DENIED", r.errorCode())
	require.Equal(t, "freeze-deletes", r.ruleKeyOf())
	require.Equal(t, http.StatusNotFound, b.do(http.MethodDelete, "/v1/documents/d1", other, "").Status, "another tenant's rules are not ours")

	// A higher-priority allow for one key wins; a custom code.
	r = a.do(http.MethodPost, "/v1/admin/governance/policies", admin, fmt.Sprintf(`{"rule_key": "admin-may", "priority": 20,
		"condition_json": {"key_ids": [%q]}, "action_json": {"type": "allow"}}`, adminID))
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	r = a.do(http.MethodPost, "/v1/admin/governance/policies", admin, `{"rule_key": "readers-no-run", "priority": 5,
		"condition_json": {"roles": ["editor"], "endpoint_prefix": "/v1/run"}, "action_json": {"type": "deny", "code": "RUN_FROZEN"}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Eventually(t, func() bool {
		return b.do(http.MethodDelete, "/v1/documents/d1", admin, "").Status == http.StatusNotFound &&
			b.do(http.MethodPost, "/v1/run", editor, `{"session_id": "s", "corpus_id": "c1", "message": "hi"}`).errorCode() == "RUN_FROZEN"
	}, 5*time.Second, 20*time.Millisecond)
	r = a.do(http.MethodGet, "/v1/admin/governance/policies", admin, "")
	require.Equal(t, http.StatusOK, r.Status)
	var order []string
	for _, p := range r.data()["policies"].([]any) {
		order = append(order, p.(map[string]any)["rule_key"].(string))
	}
	require.Equal(t, []string{"admin-may", "freeze-deletes", "readers-no-run"}, order, "evaluation order")
	require.Empty(t, a.do(http.MethodGet, "/v1/admin/governance/policies", other, "").data()["policies"])

	// The contract is typed: an unknown field is refused before the service, naming it.
	r = a.do(http.MethodPost, "/v1/admin/governance/policies", admin, `{"rule_key": "x", "condition_json": {"method": ["GET"]}, "action_json": {"type": "deny"}}`)
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
	require.Equal(t, "MALFORMED_REQUEST", r.errorCode())
	require.Contains(t, string(r.Body), `unknown field \"method\"`)
	for _, c := range []struct{ body, field string }{
		{`{"rule_key": "x", "condition_json": {"methods": ["FETCH"]}, "action_json": {"type": "deny"}}`, "condition_json.methods"},
		{`{"rule_key": "x", "condition_json": {}, "action_json": {"type": "block"}}`, "action_json.type"},
		{`{"rule_key": "no spaces", "action_json": {"type": "deny"}}`, "rule_key"},
		{`{"rule_key": "freeze-deletes", "action_json": {"type": "deny"}}`, "rule_key"},
	} {
		r = a.do(http.MethodPost, "/v1/admin/governance/policies", admin, c.body)
		require.Contains(t, []int{http.StatusBadRequest, http.StatusConflict}, r.Status, "%s: %s", c.body, r.Body)
		require.Equal(t, c.field, r.fieldOf(), c.body)
	}
	r = a.do(http.MethodPatch, fmt.Sprintf("/v1/admin/governance/policies/%v", id), other, `{"enabled": false}`)
	require.Equal(t, http.StatusNotFound, r.Status)
	require.Equal(t, "POLICY_NOT_FOUND", r.errorCode())
	require.Equal(t, http.StatusForbidden, a.do(http.MethodGet, "/v1/admin/governance/policies", editor, "").Status, "admin only")

	// A rule that denies everything leaves the rules' own routes open, so it can be undone.
	r = a.do(http.MethodPost, "/v1/admin/governance/policies", admin, `{"rule_key": "lockdown", "priority": 100, "action_json": {"type": "deny"}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	lockdown := r.data()["policy"].(map[string]any)["policy_id"]
	require.Eventually(t, func() bool { return b.do(http.MethodGet, "/v1/corpora", admin, "").Status == http.StatusForbidden }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/admin/governance/policies", admin, "").Status)
	require.Equal(t, http.StatusOK, b.do(http.MethodDelete, fmt.Sprintf("/v1/admin/governance/policies/%v", lockdown), admin, "").Status)
	// Both replicas lift it (a reads the audit log next, through a route the rule covered).
	for _, p := range []*platform{a, b} {
		require.Eventually(t, func() bool { return p.do(http.MethodGet, "/v1/corpora", admin, "").Status == http.StatusOK }, 5*time.Second, 20*time.Millisecond)
	}
	require.Eventually(t, func() bool {
		return len(a.auditEvents(admin, "event_type=policy.denied")) > 0 && len(a.auditEvents(admin, "event_type=policy.changed")) >= 4
	}, 5*time.Second, 50*time.Millisecond, "denials and changes are audited")
}

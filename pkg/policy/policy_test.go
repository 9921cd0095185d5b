package policy_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/policy"
)

func rule(t *testing.T, id int64, key string, prio int32, cond, action string) policy.Rule {
	t.Helper()
	c, err := policy.ParseCondition([]byte(cond))
	require.NoError(t, err)
	a, err := policy.ParseAction([]byte(action))
	require.NoError(t, err)
	return policy.Rule{ID: id, Key: key, Priority: prio, Condition: c, Action: a}
}

func TestEvaluate(t *testing.T) {
	rules := []policy.Rule{
		rule(t, 1, "no-deletes", 10, `{"methods": ["delete"], "endpoint_prefix": "/v1/documents"}`, `{"type": "deny", "message": "deletes are frozen"}`),
		rule(t, 2, "ops-team", 20, `{"key_ids": ["k-ops"]}`, `{"type": "allow"}`),
		rule(t, 3, "readers-no-run", 10, `{"roles": ["reader"], "endpoint_prefix": "/v1/run"}`, `{"type": "deny", "code": "RUN_NOT_FOR_READERS"}`),
		rule(t, 4, "office-only", 5, `{"endpoint_prefix": "/v1/admin", "client_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}`, `{"type": "allow"}`),
		rule(t, 5, "admin-elsewhere", 4, `{"endpoint_prefix": "/v1/admin"}`, `{"type": "deny"}`),
		rule(t, 6, "tie-later", 10, `{"methods": ["DELETE"]}`, `{"type": "allow"}`),
	}
	policy.Sort(rules)
	ip := netip.MustParseAddr
	for _, tt := range []struct {
		name string
		req  policy.Request
		want string // rule key, "" for none
	}{
		{"priority first", policy.Request{Method: "DELETE", Path: "/v1/documents/d1", KeyID: "k-ops", Role: "editor"}, "ops-team"},
		{"ties by id", policy.Request{Method: "DELETE", Path: "/v1/documents/d1", KeyID: "k1", Role: "editor"}, "no-deletes"},
		{"role and prefix", policy.Request{Method: "POST", Path: "/v1/run", Role: "reader", KeyID: "k1"}, "readers-no-run"},
		{"a condition is all of its fields", policy.Request{Method: "POST", Path: "/v1/run", Role: "editor", KeyID: "k1"}, ""},
		{"inside the network", policy.Request{Method: "GET", Path: "/v1/admin/plans", Role: "admin", ClientIP: ip("10.1.2.3")}, "office-only"},
		{"IPv4 in IPv6 form", policy.Request{Method: "GET", Path: "/v1/admin/plans", Role: "admin", ClientIP: ip("::ffff:10.1.2.3")}, "office-only"},
		{"outside", policy.Request{Method: "GET", Path: "/v1/admin/plans", Role: "admin", ClientIP: ip("192.0.2.1")}, "admin-elsewhere"},
		{"no rule", policy.Request{Method: "GET", Path: "/v1/corpora", Role: "reader"}, ""},
	} {
		r, ok := policy.Evaluate(rules, tt.req)
		require.Equal(t, tt.want != "", ok, tt.name)
		require.Equal(t, tt.want, r.Key, tt.name)
	}
	denied, _ := policy.Evaluate(rules, policy.Request{Method: "DELETE", Path: "/v1/documents/d1", KeyID: "k1"})
	e, ok := apierr.From(policy.Denied(denied))
	require.True(t, ok)
	require.Equal(t, "POLICY_DENIED", e.Code)
	require.Equal(t, "deletes are frozen", e.Message)
	require.Equal(t, "no-deletes", e.Details["rule_key"])
}

func TestParseNamesTheField(t *testing.T) {
	for _, tt := range []struct{ cond, action, field string }{
		{`{"method": ["GET"]}`, `{"type": "deny"}`, "condition_json"},
		{`{"methods": ["FETCH"]}`, `{"type": "deny"}`, "condition_json.methods"},
		{`{"roles": ["owner"]}`, `{"type": "deny"}`, "condition_json.roles"},
		{`{"endpoint_prefix": "v1"}`, `{"type": "deny"}`, "condition_json.endpoint_prefix"},
		{`{"client_cidrs": ["10.0.0.0/33"]}`, `{"type": "deny"}`, "condition_json.client_cidrs"},
		{`{}`, `{"type": "block"}`, "action_json.type"},
		{`{}`, `{"type": "deny", "code": "lower"}`, "action_json.code"},
		{`{}`, `{"type": "allow", "code": "X_Y"}`, "action_json"},
	} {
		_, err := policy.ParseCondition([]byte(tt.cond))
		if err == nil {
			_, err = policy.ParseAction([]byte(tt.action))
		}
		e, ok := apierr.From(err)
		require.True(t, ok, "%s %s", tt.cond, tt.action)
		require.Equal(t, tt.field, e.Details["field"], "%s %s", tt.cond, tt.action)
	}
}

func BenchmarkEvaluate100Rules(b *testing.B) {
	var rules []policy.Rule
	for i := range 100 {
		c, _ := policy.ParseCondition([]byte(`{"methods": ["DELETE"], "endpoint_prefix": "/v1/never", "roles": ["admin"]}`))
		a, _ := policy.ParseAction([]byte(`{"type": "deny"}`))
		rules = append(rules, policy.Rule{ID: int64(i), Key: "r", Priority: int32(i), Condition: c, Action: a})
	}
	policy.Sort(rules)
	req := policy.Request{Method: "GET", Path: "/v1/corpora", Role: "reader", KeyID: "k1"}
	for b.Loop() {
		policy.Evaluate(rules, req)
	}
}

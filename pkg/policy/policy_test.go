package policy_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/policy"
)

func rule(t *testing.T, id int64, key string, prio int32, cond policy.Condition, action policy.Action) policy.Rule {
	t.Helper()
	c, err := cond.Compile()
	require.NoError(t, err)
	a, err := action.Compile()
	require.NoError(t, err)
	return policy.Rule{ID: id, Key: key, Priority: prio, Condition: c, Action: a}
}

type (
	cond = policy.Condition
	act  = policy.Action
)

func TestEvaluate(t *testing.T) {
	rules := []policy.Rule{
		rule(t, 1, "no-deletes", 10, cond{Methods: []string{"delete"}, EndpointPrefix: "/v1/documents"}, act{Type: "deny", Message: "deletes are frozen"}),
		rule(t, 2, "ops-team", 20, cond{KeyIDs: []string{"k-ops"}}, act{Type: "allow"}),
		rule(t, 3, "readers-no-run", 10, cond{Roles: []string{"reader"}, EndpointPrefix: "/v1/run"}, act{Type: "deny", Code: "RUN_NOT_FOR_READERS"}),
		rule(t, 4, "office-only", 5, cond{EndpointPrefix: "/v1/admin", ClientCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}}, act{Type: "allow"}),
		rule(t, 5, "admin-elsewhere", 4, cond{EndpointPrefix: "/v1/admin"}, act{Type: "deny"}),
		rule(t, 6, "tie-later", 10, cond{Methods: []string{"DELETE"}}, act{Type: "allow"}),
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

// An unknown field is the contract's to refuse (protojson at the edge); values are
// checked here, naming the field.
func TestCompileNamesTheField(t *testing.T) {
	deny := act{Type: "deny"}
	for _, tt := range []struct {
		cond  cond
		act   act
		field string
	}{
		{cond{Methods: []string{"FETCH"}}, deny, "condition_json.methods"},
		{cond{Roles: []string{"owner"}}, deny, "condition_json.roles"},
		{cond{EndpointPrefix: "v1"}, deny, "condition_json.endpoint_prefix"},
		{cond{ClientCIDRs: []string{"10.0.0.0/33"}}, deny, "condition_json.client_cidrs"},
		{cond{}, act{Type: "block"}, "action_json.type"},
		{cond{}, act{Type: "deny", Code: "lower"}, "action_json.code"},
		{cond{}, act{Type: "allow", Code: "X_Y"}, "action_json"},
	} {
		_, err := tt.cond.Compile()
		if err == nil {
			_, err = tt.act.Compile()
		}
		e, ok := apierr.From(err)
		require.True(t, ok, "%+v %+v", tt.cond, tt.act)
		require.Equal(t, tt.field, e.Details["field"], "%+v %+v", tt.cond, tt.act)
	}
	a, err := deny.Compile()
	require.NoError(t, err)
	require.Equal(t, policy.CodePolicyDenied, a.Code, "a deny's default code")
}

func BenchmarkEvaluate100Rules(b *testing.B) {
	var rules []policy.Rule
	for i := range 100 {
		c, _ := cond{Methods: []string{"DELETE"}, EndpointPrefix: "/v1/never", Roles: []string{"admin"}}.Compile()
		a, _ := act{Type: "deny"}.Compile()
		rules = append(rules, policy.Rule{ID: int64(i), Key: "r", Priority: int32(i), Condition: c, Action: a})
	}
	policy.Sort(rules)
	req := policy.Request{Method: "GET", Path: "/v1/corpora", Role: "reader", KeyID: "k1"}
	for b.Loop() {
		policy.Evaluate(rules, req)
	}
}

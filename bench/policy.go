package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/nexusrag/nexusrag/pkg/policy"
)

// policySuite: the gateway's policy evaluation alone, from Go, at 0, 10 and 100 rules of
// a tenant, none matching (the worst case: every rule is looked at).
func policySuite(ctx context.Context, env *benchEnv) ([]row, error) {
	req := policy.Request{Method: "GET", Path: "/v1/corpora", Role: "reader", KeyID: "k1", ClientIP: netip.MustParseAddr("192.0.2.7")}
	var rows []row
	for _, n := range []int{0, 10, 100} {
		rules := make([]policy.Rule, 0, n)
		for i := range n {
			c, err := policy.Condition{Methods: []string{"DELETE"}, EndpointPrefix: "/v1/documents", Roles: []string{"admin"},
				ClientCIDRs: []string{"10.0.0.0/8"}}.Compile()
			if err != nil {
				return nil, err
			}
			a, _ := policy.Action{Type: "deny"}.Compile()
			rules = append(rules, policy.Rule{ID: int64(i), Key: fmt.Sprintf("r%d", i), Priority: int32(i % 7), Condition: c, Action: a})
		}
		policy.Sort(rules)
		res, err := measure(ctx, 1, env.duration/3, func() (time.Duration, bool) {
			start := time.Now()
			for range 1000 {
				policy.Evaluate(rules, req)
			}
			return time.Since(start) / 1000, true
		})
		if err != nil {
			return nil, err
		}
		p50 := float64(res.quantile(.5))
		note := "pure function, per request (a gateway request costs about 2 ms: see the rate-limit rows)"
		if n > 0 {
			note = fmt.Sprintf("%.1f ns per rule; %s", p50/float64(n), note)
		}
		rows = append(rows, row{name: fmt.Sprintf("policy: evaluation at %d rules, none matching", n), p50: fmt.Sprintf("%.0f ns", p50),
			p99: fmt.Sprintf("%.0f ns", float64(res.quantile(.99))), rate: "-", note: note})
	}
	return rows, nil
}

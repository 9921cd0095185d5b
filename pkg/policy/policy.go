// Package policy is policy-as-code: a tenant's rules, each a condition on the request and
// an action (deny or allow), evaluated highest priority first, ties by id, first match
// wins. Evaluate is a pure function; the gateway holds the rules in memory.
package policy

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// CodePolicyDenied is a deny rule's code unless it names its own.
const CodePolicyDenied = "POLICY_DENIED"

// Condition is what a request must be for the rule to apply; every field given must
// match (an empty condition matches every request). Compile it before use.
type Condition struct {
	Methods        []string // HTTP methods, any of which matches
	EndpointPrefix string   // a path that starts with it matches
	Roles          []string // reader, editor, admin: any of which matches
	KeyIDs         []string // API key ids, any of which matches
	ClientCIDRs    []string // networks the client address is in

	prefixes []netip.Prefix
}

// Action is what a matching rule does.
type Action struct {
	// Type is deny or allow (allow ends the evaluation: later rules do not apply).
	Type string
	// Code and Message are a deny's answer (code default POLICY_DENIED).
	Code, Message string
}

// Rule is one policy rule.
type Rule struct {
	ID        int64
	Key       string
	Priority  int32
	Condition Condition
	Action    Action
}

// Request is what rules look at.
type Request struct {
	Method, Path, Role, KeyID string
	ClientIP                  netip.Addr
}

var (
	methods  = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	roles    = []string{"reader", "editor", "admin"}
	codeRe   = regexp.MustCompile(`^[A-Z][A-Z0-9_]{2,63}$`)
	ruleKeys = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

// ValidKey reports whether k can name a rule.
func ValidKey(k string) bool { return ruleKeys.MatchString(k) }

// Compile checks c and returns it normalized (methods upper-cased, networks parsed); an
// error names the field (condition_json.<name>).
func (c Condition) Compile() (Condition, error) {
	c.Methods = slices.Clone(c.Methods)
	for i, m := range c.Methods {
		c.Methods[i] = strings.ToUpper(m)
		if !slices.Contains(methods, c.Methods[i]) {
			return c, apierr.InvalidArgument("condition_json.methods", fmt.Sprintf("%q is not a method (%s)", m, strings.Join(methods, ", ")))
		}
	}
	if c.EndpointPrefix != "" && !strings.HasPrefix(c.EndpointPrefix, "/") {
		return c, apierr.InvalidArgument("condition_json.endpoint_prefix", "endpoint_prefix must start with /")
	}
	for _, r := range c.Roles {
		if !slices.Contains(roles, r) {
			return c, apierr.InvalidArgument("condition_json.roles", fmt.Sprintf("%q is not a role (reader, editor, admin)", r))
		}
	}
	c.prefixes = nil
	for _, s := range c.ClientCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return c, apierr.InvalidArgument("condition_json.client_cidrs", fmt.Sprintf("%q is not a network such as 10.0.0.0/8", s))
		}
		c.prefixes = append(c.prefixes, p.Masked())
	}
	return c, nil
}

// Compile checks a and returns it normalized (a deny's default code); an error names the
// field (action_json.<name>).
func (a Action) Compile() (Action, error) {
	switch a.Type {
	case "allow":
		if a.Code != "" || a.Message != "" {
			return a, apierr.InvalidArgument("action_json", "an allow action has no code or message")
		}
	case "deny":
		if a.Code == "" {
			a.Code = CodePolicyDenied
		}
		if !codeRe.MatchString(a.Code) {
			return a, apierr.InvalidArgument("action_json.code", "code must be 3 to 64 of A-Z, 0-9 and _, starting with a letter")
		}
		if len(a.Message) > 500 {
			return a, apierr.InvalidArgument("action_json.message", "message must be at most 500 characters")
		}
	default:
		return a, apierr.InvalidArgument("action_json.type", "type must be deny or allow")
	}
	return a, nil
}

// FromProto compiles the contract's condition and action (nil: empty).
func FromProto(c *governancev1.PolicyCondition, a *governancev1.PolicyAction) (Condition, Action, error) {
	cond, err := Condition{Methods: c.GetMethods(), EndpointPrefix: c.GetEndpointPrefix(), Roles: c.GetRoles(), KeyIDs: c.GetKeyIds(),
		ClientCIDRs: c.GetClientCidrs()}.Compile()
	if err != nil {
		return cond, Action{}, err
	}
	act, err := Action{Type: a.GetType(), Code: a.GetCode(), Message: a.GetMessage()}.Compile()
	return cond, act, err
}

// ToProto is the contract's form of a compiled condition and action.
func ToProto(c Condition, a Action) (*governancev1.PolicyCondition, *governancev1.PolicyAction) {
	return &governancev1.PolicyCondition{Methods: c.Methods, EndpointPrefix: c.EndpointPrefix, Roles: c.Roles, KeyIds: c.KeyIDs, ClientCidrs: c.ClientCIDRs},
		&governancev1.PolicyAction{Type: a.Type, Code: a.Code, Message: a.Message}
}

// Sort puts rules in evaluation order: priority descending, then id ascending.
func Sort(rules []Rule) {
	slices.SortStableFunc(rules, func(a, b Rule) int {
		if a.Priority != b.Priority {
			return int(b.Priority) - int(a.Priority)
		}
		return int(a.ID - b.ID)
	})
}

// Evaluate returns the first rule of sorted rules whose condition matches req.
func Evaluate(rules []Rule, req Request) (Rule, bool) {
	for _, r := range rules {
		if r.Condition.matches(req) {
			return r, true
		}
	}
	return Rule{}, false
}

func (c Condition) matches(req Request) bool {
	if len(c.Methods) > 0 && !slices.Contains(c.Methods, req.Method) {
		return false
	}
	if c.EndpointPrefix != "" && !strings.HasPrefix(req.Path, c.EndpointPrefix) {
		return false
	}
	if len(c.Roles) > 0 && !slices.Contains(c.Roles, req.Role) {
		return false
	}
	if len(c.KeyIDs) > 0 && !slices.Contains(c.KeyIDs, req.KeyID) {
		return false
	}
	if len(c.prefixes) > 0 {
		ip := req.ClientIP.Unmap()
		if !slices.ContainsFunc(c.prefixes, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			return false
		}
	}
	return true
}

// Denied is the answer of a deny rule: 403 with its code, its message, the rule key.
func Denied(r Rule) error {
	msg := r.Action.Message
	if msg == "" {
		msg = "this request is denied by the tenant's policy " + r.Key
	}
	return apierr.New(codes.PermissionDenied, r.Action.Code, msg, "rule_key", r.Key)
}

package billing

import (
	"slices"

	"github.com/nexusrag/nexusrag/pkg/entitlements"
)

// Plan is a named set of features.
type Plan struct {
	ID, Name string
	Features []string
}

// Plans are the plans there are, cheapest first.
var Plans = []Plan{
	{ID: "free", Name: "Free", Features: []string{entitlements.RetrievalLocal}},
	{ID: "pro", Name: "Pro", Features: []string{entitlements.RetrievalLocal, entitlements.RetrievalVertex, entitlements.TTS,
		entitlements.OpsAdminAccess, entitlements.AuditAccess, entitlements.CorporaPatchProviderConfig, entitlements.BillingWebhookTest}},
	{ID: "enterprise", Name: "Enterprise", Features: entitlements.Keys},
}

// PlanIDs are the plans' ids, cheapest first.
func PlanIDs() []string {
	out := make([]string, len(Plans))
	for i, p := range Plans {
		out[i] = p.ID
	}
	return out
}

func planByID(id string) (Plan, bool) {
	i := slices.IndexFunc(Plans, func(p Plan) bool { return p.ID == id })
	if i < 0 {
		return Plan{}, false
	}
	return Plans[i], true
}

// feature is one feature as a tenant has it.
type feature struct {
	key      string
	enabled  bool
	override bool
	config   []byte // the override's config_json, when it has one
}

// effective is what a tenant on plan has, changed by its overrides, in feature-key order.
func effective(plan Plan, overrides map[string]override) []feature {
	out := make([]feature, 0, len(entitlements.Keys))
	for _, key := range entitlements.Keys {
		f := feature{key: key, enabled: slices.Contains(plan.Features, key)}
		if o, ok := overrides[key]; ok {
			f.enabled, f.override, f.config = o.enabled, true, o.config
		}
		out = append(out, f)
	}
	return out
}

// enabledKeys are the keys of the enabled features.
func enabledKeys(fs []feature) []string {
	var out []string
	for _, f := range fs {
		if f.enabled {
			out = append(out, f.key)
		}
	}
	return out
}

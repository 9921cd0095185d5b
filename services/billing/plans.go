package billing

import (
	"slices"

	"github.com/nexusrag/nexusrag/pkg/entitlements"
)

// Plan is a named set of features, with the request quotas a tenant has until it sets
// its own.
type Plan struct {
	ID, Name string
	Features []string
	Quota    Quota
}

// Quota is a tenant's request quotas.
type Quota struct {
	Daily, Monthly int64
	SoftCapRatio   float64
	HardCap        bool
}

// Plans are the plans there are, cheapest first.
var Plans = []Plan{
	{ID: "free", Name: "Free", Features: []string{entitlements.RetrievalLocal},
		Quota: Quota{Daily: 1_000, Monthly: 20_000, SoftCapRatio: 0.8, HardCap: true}},
	{ID: "pro", Name: "Pro", Features: []string{entitlements.RetrievalLocal, entitlements.RetrievalVertex, entitlements.TTS,
		entitlements.OpsAdminAccess, entitlements.AuditAccess, entitlements.CorporaPatchProviderConfig, entitlements.BillingWebhookTest},
		Quota: Quota{Daily: 10_000, Monthly: 200_000, SoftCapRatio: 0.8, HardCap: true}},
	{ID: "enterprise", Name: "Enterprise", Features: entitlements.Keys, Quota: highTier},
}

// highTier is the quota of every tenant with feature.high_quota_tier, whatever its plan.
var highTier = Quota{Daily: 100_000, Monthly: 2_000_000, SoftCapRatio: 0.8, HardCap: true}

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

// defaultQuota is the quota of a tenant on plan with the features fs, before its own
// settings: the high tier with feature.high_quota_tier, else the plan's.
func defaultQuota(plan Plan, fs []feature) Quota {
	for _, f := range fs {
		if f.key == entitlements.HighQuotaTier && f.enabled {
			return highTier
		}
	}
	return plan.Quota
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

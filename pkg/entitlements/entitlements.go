// Package entitlements says what a tenant's plan lets it do. The feature keys are the
// product's names for what plans grant; a Checker answers whether a tenant has one, and
// Cache is the Checker of every process: it asks the billing service once per tenant
// and follows billing's changes, so that a check costs no call and a change reaches
// every process within two sync intervals.
package entitlements

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// The feature keys.
const (
	RetrievalLocal             = "feature.retrieval.local_pgvector"
	RetrievalBedrock           = "feature.retrieval.aws_bedrock_kb"
	RetrievalVertex            = "feature.retrieval.gcp_vertex"
	TTS                        = "feature.tts"
	OpsAdminAccess             = "feature.ops_admin_access"
	AuditAccess                = "feature.audit_access"
	CorporaPatchProviderConfig = "feature.corpora_patch_provider_config"
	BillingWebhookTest         = "feature.billing_webhook_test"
	HighQuotaTier              = "feature.high_quota_tier"
)

// Keys are every feature key, in the order the plans table lists them.
var Keys = []string{RetrievalLocal, RetrievalBedrock, RetrievalVertex, TTS, OpsAdminAccess, AuditAccess,
	CorporaPatchProviderConfig, BillingWebhookTest, HighQuotaTier}

// Known reports whether key is a feature key.
func Known(key string) bool { return slices.Contains(Keys, key) }

// ForProvider is the feature a corpus's retrieval provider needs ("local_pgvector",
// "aws_bedrock_kb", "gcp_vertex").
func ForProvider(provider string) string { return "feature.retrieval." + provider }

// CodeFeatureNotEnabled is the code of a refusal for a missing feature.
const CodeFeatureNotEnabled = "FEATURE_NOT_ENABLED"

// NotEnabled is the refusal of a call that needs feature: 403, details.feature_key.
func NotEnabled(feature string) error {
	return apierr.New(codes.PermissionDenied, CodeFeatureNotEnabled,
		"the tenant's plan does not include "+feature+": ask an admin to upgrade the plan", "feature_key", feature)
}

// Checker answers whether a tenant has a feature: nil, NotEnabled, or the error that
// kept it from knowing.
type Checker interface {
	Require(ctx context.Context, tenant, feature string) error
}

// Static is a Checker with the same features for every tenant (tests, and tools that
// run without the billing service).
type Static []string

// Require implements Checker.
func (s Static) Require(_ context.Context, _ string, feature string) error {
	if slices.Contains(s, feature) {
		return nil
	}
	return NotEnabled(feature)
}

// Everything is a Static Checker that grants every feature.
var Everything = Static(Keys)

// Package audit is the client side of the audit log: the event taxonomy, the Recorder
// every service uses to send events to the governance service without blocking the
// request path, and a Sampler for events an attacker could otherwise multiply.
package audit

import "slices"

// Outcomes. A refused request (a forbidden role, a rate limit, a bad key) is a failure.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	// outcomeDenied is how refusals were recorded before they became failures; rows and
	// recorders of that time are read as failure.
	outcomeDenied = "denied"
)

// Actor types.
const (
	ActorAPIKey    = "api_key"
	ActorSystem    = "system"
	ActorCLI       = "cli"
	ActorAnonymous = "anonymous"
)

// Event types: <area>.<object>.<verb>.
const (
	// TypeAPIKeyCreated: a key was created (CLI).
	TypeAPIKeyCreated = "auth.api_key.created"
	// TypeAPIKeyUpdated: a key was renamed.
	TypeAPIKeyUpdated = "auth.api_key.updated"
	// TypeAPIKeyRevoked: a key was revoked.
	TypeAPIKeyRevoked = "auth.api_key.revoked"
	// TypeAuthAccessSuccess: a request authenticated (sampled per key).
	TypeAuthAccessSuccess = "auth.access.success"
	// TypeAuthAccessFailure: a request failed authentication (sampled per client and reason).
	TypeAuthAccessFailure = "auth.access.failure"
	// TypeRBACForbidden: an authenticated caller lacked the role a method needs.
	TypeRBACForbidden = "rbac.forbidden"
	// TypeSecurityRateLimited: a request was refused by the rate limiter (sampled).
	TypeSecurityRateLimited = "security.rate_limited"
	// TypeRateLimitDegraded: the rate limiter could not reach Redis and let requests pass.
	TypeRateLimitDegraded = "system.rate_limit.degraded"
	// TypeCorporaUpdated: a corpus's configuration changed.
	TypeCorporaUpdated = "corpora.updated"
	// TypeIngestEnqueued: a document was queued for ingestion.
	TypeIngestEnqueued = "documents.ingest.enqueued"
	// TypeReindexEnqueued: a document was queued for reindexing.
	TypeReindexEnqueued = "documents.reindex.enqueued"
	// TypeDocumentDeleted: a document and its chunks were deleted.
	TypeDocumentDeleted = "documents.deleted"
	// TypeDeadLetterRequeued: an ingestion job out of attempts (a dead letter) was put back on the queue.
	TypeDeadLetterRequeued = "documents.dead_letter.requeued"
	// TypeRunInvoked: an agent run started (never its message text).
	TypeRunInvoked = "run.invoked"
	// TypePlanChanged: a tenant's plan was assigned.
	TypePlanChanged = "plan.changed"
	// TypePlanOverrideChanged: a feature override of a tenant was set or removed.
	TypePlanOverrideChanged = "plan.override_changed"
	// TypeQuotaChanged: a tenant's request quotas were changed.
	TypeQuotaChanged = "quota.changed"
	// TypeQuotaSoftCapReached: a tenant crossed the soft cap of a period (once per period).
	TypeQuotaSoftCapReached = "quota.soft_cap_reached"
	// TypeQuotaHardCapBlocked: a request was refused past a hard cap (sampled).
	TypeQuotaHardCapBlocked = "quota.hard_cap_blocked"
	// TypeQuotaOverageObserved: a request passed a limit whose hard cap is off (sampled).
	TypeQuotaOverageObserved = "quota.overage_observed"
	// TypeUsageRecorded: a snapshot of a tenant's counted requests (sampled, hourly).
	TypeUsageRecorded = "billing.usage_recorded"
	// TypeWebhookFailure: a billing webhook event failed its last delivery attempt and
	// was kept as a dead letter.
	TypeWebhookFailure = "billing.webhook.failure"
	// TypeUpgradeRequested: a tenant's admin asked for another plan (self-serve).
	TypeUpgradeRequested = "plan.upgrade_requested"
	// Self-serve: a tenant's admin managing its own keys, usage, plan and webhook.
	TypeSelfServeKeyCreated    = "selfserve.api_key.created"
	TypeSelfServeKeyRevoked    = "selfserve.api_key.revoked"
	TypeSelfServeKeysListed    = "selfserve.api_key.listed"
	TypeSelfServeUsageViewed   = "selfserve.usage.viewed"
	TypeSelfServePlanViewed    = "selfserve.plan.viewed"
	TypeSelfServeWebhookTested = "selfserve.billing_webhook_tested"
	// TypeOpsViewed: an admin read an ops endpoint.
	TypeOpsViewed = "ops.viewed"
	// TypeWorkerHeartbeatMissed: no ingest worker reported within INGEST_CLAIM_TIMEOUT
	// (audited once until one reports again).
	TypeWorkerHeartbeatMissed = "system.worker.heartbeat.missed"
	// TypeRolloutChanged: a platform admin turned kill switches or canary percentages.
	TypeRolloutChanged = "rollout.changed"
	// TypePolicyChanged: a tenant's policy rule was created, updated or deleted.
	TypePolicyChanged = "policy.changed"
	// TypePolicyDenied: a request was denied by a policy rule (sampled).
	TypePolicyDenied = "policy.denied"
	// TypeLegalHoldCreated and TypeLegalHoldReleased: a legal hold was placed or ended.
	TypeLegalHoldCreated  = "legal_hold.created"
	TypeLegalHoldReleased = "legal_hold.released"
	// TypeRetentionPolicyChanged: a tenant's retention policy was changed.
	TypeRetentionPolicyChanged = "retention.policy_changed"
	// TypeRetentionRunStarted and TypeRetentionRunCompleted: a retention run was started and
	// finished (outcome failure: it gave up), with its counts by outcome.
	TypeRetentionRunStarted   = "retention.run_started"
	TypeRetentionRunCompleted = "retention.run_completed"
	// TypeDsarRequested, TypeDsarApproved, TypeDsarCompleted: a data subject access request
	// was made, approved by a second admin, and finished (outcome failure: it failed).
	TypeDsarRequested = "dsar.requested"
	TypeDsarApproved  = "dsar.approved"
	TypeDsarCompleted = "dsar.completed"
	// TypeMaintenanceRun: a maintenance task ran, on demand or on its schedule.
	TypeMaintenanceRun = "maintenance.run"
	// TypeBackupCreated, TypeBackupRestored, TypeBackupPruned: a backup set was made,
	// restored (or a restore refused: outcome failure), deleted by retention.
	TypeBackupCreated  = "backup.created"
	TypeBackupRestored = "backup.restored"
	TypeBackupPruned   = "backup.pruned"
	// TypeRestoreDrill: a restore drill ran (outcome failure: the restore or its checks failed).
	TypeRestoreDrill = "backup.restore_drill"
	// TypeWriteFreezeChanged: an operator froze or unfroze a region's writes.
	TypeWriteFreezeChanged = "failover.write_freeze_changed"
	// TypeFailoverTokenIssued: a one-time promote or rollback token was issued (never the token).
	TypeFailoverTokenIssued = "failover.token_issued"
	// TypeFailoverTransition: a failover moved from one state to another.
	TypeFailoverTransition = "failover.transition"
)

// Types lists every known event type.
func Types() []string {
	return []string{
		TypeAPIKeyCreated, TypeAPIKeyUpdated, TypeAPIKeyRevoked, TypeAuthAccessSuccess, TypeAuthAccessFailure,
		TypeRBACForbidden, TypeSecurityRateLimited, TypeRateLimitDegraded, TypeCorporaUpdated,
		TypeIngestEnqueued, TypeReindexEnqueued, TypeDocumentDeleted, TypeDeadLetterRequeued, TypeRunInvoked, TypePlanChanged, TypePlanOverrideChanged,
		TypeQuotaChanged, TypeQuotaSoftCapReached, TypeQuotaHardCapBlocked, TypeQuotaOverageObserved, TypeUsageRecorded,
		TypeWebhookFailure, TypeUpgradeRequested, TypeSelfServeKeyCreated, TypeSelfServeKeyRevoked, TypeSelfServeKeysListed,
		TypeSelfServeUsageViewed, TypeSelfServePlanViewed, TypeSelfServeWebhookTested, TypeOpsViewed, TypeWorkerHeartbeatMissed,
		TypeRolloutChanged, TypePolicyChanged, TypePolicyDenied, TypeLegalHoldCreated, TypeLegalHoldReleased,
		TypeRetentionPolicyChanged, TypeRetentionRunStarted, TypeRetentionRunCompleted, TypeDsarRequested, TypeDsarApproved,
		TypeDsarCompleted, TypeMaintenanceRun, TypeBackupCreated, TypeBackupRestored, TypeBackupPruned, TypeRestoreDrill,
		TypeWriteFreezeChanged, TypeFailoverTokenIssued, TypeFailoverTransition,
	}
}

// KnownType reports whether t is in the taxonomy.
func KnownType(t string) bool { return slices.Contains(Types(), t) }

// NormalizeOutcome returns the outcome o stands for, and whether it is one: success or
// failure (the former "denied" is a failure).
func NormalizeOutcome(o string) (string, bool) {
	switch o {
	case OutcomeSuccess, OutcomeFailure:
		return o, true
	case outcomeDenied:
		return OutcomeFailure, true
	}
	return "", false
}

// KnownActorType reports whether a is an actor type.
func KnownActorType(a string) bool {
	return a == ActorAPIKey || a == ActorSystem || a == ActorCLI || a == ActorAnonymous
}

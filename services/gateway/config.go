package gateway

import (
	"fmt"
	"time"
)

// Config is the gateway's configuration, parsed from the environment.
type Config struct {
	// AuthDevBypass accepts X-Tenant-Id (+ X-Role, default admin) instead of an API key. Never in production.
	AuthDevBypass bool `env:"AUTH_DEV_BYPASS" envDefault:"false"`
	// AuthKeySyncInterval is how often each replica syncs revocations from Postgres.
	AuthKeySyncInterval time.Duration `env:"AUTH_KEY_SYNC_INTERVAL" envDefault:"1s"`
	// AuthNegativeCacheTTL is how long an unknown key id is answered without a lookup.
	AuthNegativeCacheTTL time.Duration `env:"AUTH_NEGATIVE_CACHE_TTL" envDefault:"5s"`
	// LegacyRoutesEnabled serves the unversioned pre-v1 paths (with Deprecation/Sunset headers);
	// false answers them 410 ENDPOINT_SUNSET.
	LegacyRoutesEnabled bool `env:"LEGACY_ROUTES_ENABLED" envDefault:"true"`
	// MaxBodyBytes bounds JSON request bodies.
	MaxBodyBytes int64 `env:"HTTP_MAX_BODY_BYTES" envDefault:"1048576"`
	// IngestMaxBytes is the ingest service's limit on a document's text; document uploads
	// may send that much plus 1 MiB of form or JSON framing.
	IngestMaxBytes int64 `env:"INGEST_MAX_BYTES" envDefault:"10485760"`
	// PolicySyncInterval is how often the gateway checks governance for changed policy
	// rules: a change reaches every replica within two intervals.
	PolicySyncInterval time.Duration `env:"POLICY_SYNC_INTERVAL" envDefault:"1s"`
	// WriteGateSyncInterval is how often the gateway asks failover whether this region takes
	// writes (a freeze reaches every gateway within two intervals).
	WriteGateSyncInterval time.Duration `env:"WRITE_GATE_SYNC_INTERVAL" envDefault:"1s"`
	// StatsFlushInterval is how often request outcomes are added to every replica's
	// counts in Redis (the SLO and ops metrics): what a crash can lose of them.
	StatsFlushInterval time.Duration `env:"REQUEST_STATS_FLUSH_INTERVAL" envDefault:"5s"`
	// RunHeartbeatInterval is how long a /v1/run stream may stay silent before a heartbeat event.
	RunHeartbeatInterval time.Duration `env:"RUN_HEARTBEAT_INTERVAL" envDefault:"15s"`
	// RunStreamResume keeps each run's events in Redis for RunStreamResumeTTL, so that a
	// client resumes a dropped stream (Last-Event-ID) on any replica; the run goes on
	// when its client goes away. Off: a reconnect gets resume.unsupported.
	RunStreamResume    bool          `env:"RUN_STREAM_RESUME" envDefault:"false"`
	RunStreamResumeTTL time.Duration `env:"RUN_STREAM_RESUME_TTL" envDefault:"10m"`
	// RateLimitEnabled turns the per-key and per-tenant token buckets on.
	RateLimitEnabled bool `env:"RL_ENABLED" envDefault:"true"`
	// RateLimitFailMode is open (Redis down: requests pass, marked degraded) or closed (503).
	RateLimitFailMode string        `env:"RL_FAIL_MODE" envDefault:"open"`
	RateLimitTimeout  time.Duration `env:"RL_TIMEOUT" envDefault:"100ms"`
	// Buckets per route class, as rate/burst, per API key and per tenant.
	RateLimitRunKey         Bucket `env:"RL_RUN_KEY" envDefault:"1/5"`
	RateLimitRunTenant      Bucket `env:"RL_RUN_TENANT" envDefault:"3/15"`
	RateLimitMutationKey    Bucket `env:"RL_MUTATION_KEY" envDefault:"2/10"`
	RateLimitMutationTenant Bucket `env:"RL_MUTATION_TENANT" envDefault:"5/25"`
	RateLimitReadKey        Bucket `env:"RL_READ_KEY" envDefault:"5/20"`
	RateLimitReadTenant     Bucket `env:"RL_READ_TENANT" envDefault:"15/60"`
	RateLimitOpsKey         Bucket `env:"RL_OPS_KEY" envDefault:"2/10"`
	RateLimitOpsTenant      Bucket `env:"RL_OPS_TENANT" envDefault:"4/20"`
	// RateLimitAuditInterval samples security.rate_limited (per key and class) and
	// system.rate_limit.degraded.
	RateLimitAuditInterval time.Duration `env:"RL_AUDIT_INTERVAL" envDefault:"60s"`
	// QuotaEnabled counts every authenticated request against its tenant's request quotas
	// (in the rate limiter's Redis round trip).
	QuotaEnabled bool `env:"QUOTA_ENABLED" envDefault:"true"`
	// QuotaFailMode is open (Redis or billing down: requests pass uncounted, marked
	// degraded) or closed (503 QUOTA_UNAVAILABLE).
	QuotaFailMode string `env:"QUOTA_FAIL_MODE" envDefault:"open"`
	// IdempotencyTTL is how long a stored response answers a repeated Idempotency-Key.
	IdempotencyTTL time.Duration `env:"IDEMPOTENCY_TTL" envDefault:"24h"`
	// AuditAccessSuccessInterval samples auth.access.success: one event per key per interval.
	AuditAccessSuccessInterval time.Duration `env:"AUDIT_ACCESS_SUCCESS_INTERVAL" envDefault:"60s"`
	// AuditAccessFailureInterval samples auth.access.failure: one event per client and reason per interval.
	AuditAccessFailureInterval time.Duration `env:"AUDIT_ACCESS_FAILURE_INTERVAL" envDefault:"10s"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch {
	case c.AuthKeySyncInterval < 100*time.Millisecond || c.AuthKeySyncInterval > 4*time.Second:
		return fmt.Errorf("AUTH_KEY_SYNC_INTERVAL: %s is outside 100ms..4s (revocations must reach every replica within 5s)", c.AuthKeySyncInterval)
	case c.AuthNegativeCacheTTL < 0 || c.AuthNegativeCacheTTL > time.Minute:
		return fmt.Errorf("AUTH_NEGATIVE_CACHE_TTL: %s is outside 0..1m", c.AuthNegativeCacheTTL)
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("HTTP_MAX_BODY_BYTES: %d is below 1024", c.MaxBodyBytes)
	case c.WriteGateSyncInterval < 100*time.Millisecond || c.WriteGateSyncInterval > 5*time.Second:
		return fmt.Errorf("WRITE_GATE_SYNC_INTERVAL: %s is outside 100ms..5s", c.WriteGateSyncInterval)
	case c.PolicySyncInterval < 100*time.Millisecond || c.PolicySyncInterval > 2*time.Second:
		return fmt.Errorf("POLICY_SYNC_INTERVAL: %s is outside 100ms..2s (policy changes must reach every replica within 5s)", c.PolicySyncInterval)
	case c.StatsFlushInterval < 100*time.Millisecond || c.StatsFlushInterval > time.Minute:
		return fmt.Errorf("REQUEST_STATS_FLUSH_INTERVAL: %s is outside 100ms..1m", c.StatsFlushInterval)
	case c.IngestMaxBytes < 1024:
		return fmt.Errorf("INGEST_MAX_BYTES: %d is below 1024", c.IngestMaxBytes)
	case c.RateLimitFailMode != "open" && c.RateLimitFailMode != "closed":
		return fmt.Errorf("RL_FAIL_MODE: %q is not open or closed", c.RateLimitFailMode)
	case c.QuotaFailMode != "open" && c.QuotaFailMode != "closed":
		return fmt.Errorf("QUOTA_FAIL_MODE: %q is not open or closed", c.QuotaFailMode)
	case c.RateLimitTimeout < time.Millisecond || c.RateLimitTimeout > 5*time.Second:
		return fmt.Errorf("RL_TIMEOUT: %s is outside 1ms..5s", c.RateLimitTimeout)
	case c.RunHeartbeatInterval < 10*time.Millisecond:
		return fmt.Errorf("RUN_HEARTBEAT_INTERVAL: %s is below 10ms", c.RunHeartbeatInterval)
	case c.RunStreamResume && c.RunStreamResumeTTL < time.Second:
		return fmt.Errorf("RUN_STREAM_RESUME_TTL: %s is below 1s", c.RunStreamResumeTTL)
	case c.IdempotencyTTL < time.Minute:
		return fmt.Errorf("IDEMPOTENCY_TTL: %s is below 1m", c.IdempotencyTTL)
	case c.AuditAccessSuccessInterval < 0 || c.AuditAccessFailureInterval < 0:
		return fmt.Errorf("AUDIT_ACCESS_SUCCESS_INTERVAL / AUDIT_ACCESS_FAILURE_INTERVAL: must not be negative")
	}
	return nil
}

// RateLimitOptions are the limiter's options from the configuration: the buckets when
// RL_ENABLED, quotas (from quotas, reported to reports) when QUOTA_ENABLED.
func (c *Config) RateLimitOptions(quotas QuotaSource, reports QuotaReporter) RateLimitOptions {
	o := RateLimitOptions{
		Limits: map[string]ClassLimits{
			ClassRun:      {Key: c.RateLimitRunKey, Tenant: c.RateLimitRunTenant},
			ClassMutation: {Key: c.RateLimitMutationKey, Tenant: c.RateLimitMutationTenant},
			ClassRead:     {Key: c.RateLimitReadKey, Tenant: c.RateLimitReadTenant},
			ClassOps:      {Key: c.RateLimitOpsKey, Tenant: c.RateLimitOpsTenant},
		},
		FailOpen: c.RateLimitFailMode == "open", Timeout: c.RateLimitTimeout,
		DegradedAuditInterval: c.RateLimitAuditInterval, RefusedAuditInterval: c.RateLimitAuditInterval,
		QuotaFailOpen: c.QuotaFailMode == "open",
	}
	if !c.RateLimitEnabled {
		o.Limits = nil
	}
	if c.QuotaEnabled {
		o.Quotas, o.Reports = quotas, reports
	}
	return o
}

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
	// RunHeartbeatInterval is how long a /v1/run stream may stay silent before a heartbeat event.
	RunHeartbeatInterval time.Duration `env:"RUN_HEARTBEAT_INTERVAL" envDefault:"15s"`
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
	case c.IngestMaxBytes < 1024:
		return fmt.Errorf("INGEST_MAX_BYTES: %d is below 1024", c.IngestMaxBytes)
	case c.RunHeartbeatInterval < 10*time.Millisecond:
		return fmt.Errorf("RUN_HEARTBEAT_INTERVAL: %s is below 10ms", c.RunHeartbeatInterval)
	case c.IdempotencyTTL < time.Minute:
		return fmt.Errorf("IDEMPOTENCY_TTL: %s is below 1m", c.IdempotencyTTL)
	case c.AuditAccessSuccessInterval < 0 || c.AuditAccessFailureInterval < 0:
		return fmt.Errorf("AUDIT_ACCESS_SUCCESS_INTERVAL / AUDIT_ACCESS_FAILURE_INTERVAL: must not be negative")
	}
	return nil
}

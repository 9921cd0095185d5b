package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// platformConfig is what every process needs, whatever services it runs.
type platformConfig struct {
	DatabaseURL    string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/nexusrag?sslmode=disable"`
	RedisURL       string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisKeyPrefix string `env:"REDIS_KEY_PREFIX" envDefault:"nexusrag:"`
	// HTTPAddr serves the gateway's REST API, when the gateway runs here.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8000"`
	// GRPCAddr serves every gRPC service of the process. Loopback by default; a split
	// deployment sets it (":9000") so that the other processes reach it.
	GRPCAddr string `env:"GRPC_ADDR" envDefault:"127.0.0.1:9000"`
	// MetricsAddr is the operator listener: /metrics, and /debug/pprof with PPROF_ENABLED.
	MetricsAddr  string `env:"METRICS_ADDR" envDefault:"127.0.0.1:9090"`
	PprofEnabled bool   `env:"PPROF_ENABLED" envDefault:"false"`
	// DebugAddr is retired (pprof moved to METRICS_ADDR); when set it turns pprof on with a warning.
	DebugAddr string `env:"DEBUG_ADDR"`
	// Where services not run in this process are reached, <NAME>_GRPC_ADDR
	// (GOVERNANCE_GRPC_ADDR, ...), is read per service of the module registry.

	// Service credentials (ADR 0011): the keys this process signs and verifies service
	// tokens with, from a file (re-read every SERVICE_AUTH_RELOAD_INTERVAL) or the
	// environment. Required unless every service runs in this process.
	ServiceKeysFile   string        `env:"SERVICE_AUTH_KEYS_FILE"`
	ServiceKeys       []string      `env:"SERVICE_AUTH_KEYS" envSeparator:","`
	ServiceTokenTTL   time.Duration `env:"SERVICE_AUTH_TOKEN_TTL" envDefault:"60s"`
	ServiceKeysReload time.Duration `env:"SERVICE_AUTH_RELOAD_INTERVAL" envDefault:"10s"`
	RemoteKeyCacheTTL time.Duration `env:"AUTH_REMOTE_CACHE_TTL" envDefault:"1s"`
	GRPCTLSCertFile   string        `env:"GRPC_TLS_CERT_FILE"`
	GRPCTLSKeyFile    string        `env:"GRPC_TLS_KEY_FILE"`
	GRPCTLSCAFile     string        `env:"GRPC_TLS_CA_FILE"`
	GRPCTLSServerName string        `env:"GRPC_TLS_SERVER_NAME"`

	// EntitlementsSyncInterval is how often a process follows billing's plan changes; a
	// change reaches every process within two intervals.
	EntitlementsSyncInterval time.Duration `env:"ENTITLEMENTS_SYNC_INTERVAL" envDefault:"1s"`
	// RolloutSyncInterval is how often a process reads the kill switches and canaries.
	RolloutSyncInterval time.Duration `env:"ROLLOUT_SYNC_INTERVAL" envDefault:"1s"`
	// MaintenanceInterval is how often each maintenance task runs on its schedule (one
	// replica per round).
	MaintenanceInterval time.Duration `env:"MAINTENANCE_INTERVAL" envDefault:"1h"`

	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"25s"`
	LogLevel        string        `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat       string        `env:"LOG_FORMAT" envDefault:"json"`
	DBMaxConns      int32         `env:"DB_MAX_CONNS" envDefault:"16"`
}

func (c *platformConfig) Validate() error {
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return fmt.Errorf("REDIS_URL: want redis://host:port/db")
	}
	if c.ShutdownTimeout <= 0 {
		return fmt.Errorf("SHUTDOWN_TIMEOUT: must be positive")
	}
	if c.DBMaxConns < 1 {
		return fmt.Errorf("DB_MAX_CONNS: must be at least 1")
	}
	switch {
	case c.ServiceKeysFile != "" && len(c.ServiceKeys) > 0:
		return fmt.Errorf("SERVICE_AUTH_KEYS_FILE and SERVICE_AUTH_KEYS: set one, not both")
	case c.ServiceTokenTTL < 5*time.Second || c.ServiceTokenTTL > svcauth.MaxLifetime:
		return fmt.Errorf("SERVICE_AUTH_TOKEN_TTL: %s is outside 5s..%s", c.ServiceTokenTTL, svcauth.MaxLifetime)
	case c.ServiceKeysReload < time.Second:
		return fmt.Errorf("SERVICE_AUTH_RELOAD_INTERVAL: %s is below 1s", c.ServiceKeysReload)
	case c.RemoteKeyCacheTTL < 0 || c.RemoteKeyCacheTTL > 3*time.Second:
		return fmt.Errorf("AUTH_REMOTE_CACHE_TTL: %s is outside 0..3s (revocations must reach every process within 5s)", c.RemoteKeyCacheTTL)
	case c.EntitlementsSyncInterval < 100*time.Millisecond || c.EntitlementsSyncInterval > 2*time.Second:
		return fmt.Errorf("ENTITLEMENTS_SYNC_INTERVAL: %s is outside 100ms..2s (plan changes must reach every process within 5s)", c.EntitlementsSyncInterval)
	case c.RolloutSyncInterval < 100*time.Millisecond || c.RolloutSyncInterval > 4*time.Second:
		return fmt.Errorf("ROLLOUT_SYNC_INTERVAL: %s is outside 100ms..4s (a kill switch must reach every process within 5s)", c.RolloutSyncInterval)
	case (c.GRPCTLSCertFile == "") != (c.GRPCTLSKeyFile == ""):
		return fmt.Errorf("GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE: set both or neither")
	}
	return nil
}

// loadPlatform parses the platform configuration and builds the logger writing to w.
func loadPlatform(w io.Writer) (platformConfig, *slog.Logger, error) {
	cfg, err := config.Parse[platformConfig](nil)
	if err != nil {
		return cfg, nil, err
	}
	log, err := logging.New(w, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return cfg, nil, fmt.Errorf("LOG_LEVEL/LOG_FORMAT: %w", err)
	}
	return cfg, log, nil
}

package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/logging"
)

// platformConfig is what every process needs, whatever services it runs.
type platformConfig struct {
	DatabaseURL    string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/nexusrag?sslmode=disable"`
	RedisURL       string `env:"REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RedisKeyPrefix string `env:"REDIS_KEY_PREFIX" envDefault:"nexusrag:"`
	// HTTPAddr serves the gateway's REST API (when the gateway runs here) and /metrics.
	HTTPAddr string `env:"HTTP_ADDR" envDefault:":8000"`
	// GRPCAddr serves every gRPC service of the process (internal port: reflection is on).
	GRPCAddr string `env:"GRPC_ADDR" envDefault:":9000"`
	// Where services not run in this process are reached.
	GatewayGRPCAddr    string `env:"GATEWAY_GRPC_ADDR"`
	GovernanceGRPCAddr string `env:"GOVERNANCE_GRPC_ADDR"`
	RetrievalGRPCAddr  string `env:"RETRIEVAL_GRPC_ADDR"`
	IngestGRPCAddr     string `env:"INGEST_GRPC_ADDR"`
	RunGRPCAddr        string `env:"RUN_GRPC_ADDR"`

	// DebugAddr, when set, serves /debug/pprof (keep it on a private interface).
	DebugAddr string `env:"DEBUG_ADDR"`

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
	return nil
}

// remoteAddr is where a service runs when it is not in this process.
func (c *platformConfig) remoteAddr(service string) (addr, variable string) {
	switch service {
	case "gateway":
		return c.GatewayGRPCAddr, "GATEWAY_GRPC_ADDR"
	case "governance":
		return c.GovernanceGRPCAddr, "GOVERNANCE_GRPC_ADDR"
	case "retrieval":
		return c.RetrievalGRPCAddr, "RETRIEVAL_GRPC_ADDR"
	case "ingest":
		return c.IngestGRPCAddr, "INGEST_GRPC_ADDR"
	case "run":
		return c.RunGRPCAddr, "RUN_GRPC_ADDR"
	}
	return "", ""
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

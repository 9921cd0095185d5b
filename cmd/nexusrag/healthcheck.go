package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
)

// healthcheckConfig is what `nexusrag healthcheck` reads of the process's own settings:
// where its gRPC port listens, and whether it speaks TLS there.
type healthcheckConfig struct {
	GRPCAddr          string `env:"GRPC_ADDR" envDefault:"127.0.0.1:9000"`
	GRPCTLSCertFile   string `env:"GRPC_TLS_CERT_FILE"`
	GRPCTLSCAFile     string `env:"GRPC_TLS_CA_FILE"`
	GRPCTLSServerName string `env:"GRPC_TLS_SERVER_NAME"`
}

// healthcheckCmd asks a process's gRPC port whether it serves (grpc.health.v1, the whole
// process), for runtimes that probe by running a command in the container, such as
// docker compose: the image has no shell or curl. Kubernetes probes gRPC natively.
func healthcheckCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "healthcheck [--timeout 2s]",
		Short: "Exit 0 when the process on this host's GRPC_ADDR answers SERVING (container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Parse[healthcheckConfig](nil)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			return checkHealth(ctx, cfg)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the answer")
	return cmd
}

func checkHealth(ctx context.Context, cfg healthcheckConfig) error {
	host, port, err := net.SplitHostPort(cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("GRPC_ADDR: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening on every interface: ask through loopback
	}
	target := net.JoinHostPort(host, port)
	var o grpcx.ClientOptions
	if cfg.GRPCTLSCertFile != "" {
		var tlsCfg *tls.Config
		if tlsCfg, err = grpcx.ClientTLS(cfg.GRPCTLSCAFile, cfg.GRPCTLSServerName); err != nil {
			return err
		}
		o.TLS = tlsCfg
	}
	conn, err := grpcx.Dial(target, o)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check of %s: %w", target, err)
	}
	if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check of %s: %s", target, res.GetStatus())
	}
	return nil
}

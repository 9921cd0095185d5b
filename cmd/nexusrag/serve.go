package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
)

func serveCmd() *cobra.Command {
	var services string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run NexusRAG services (all of them by default)",
		Long: `Run NexusRAG services in this process. --services picks a subset (for one
Deployment per service); services not run here are reached at <NAME>_GRPC_ADDR.
Every gRPC service of the process shares GRPC_ADDR (health and reflection on);
HTTP_ADDR serves the REST API when the gateway runs here, and /metrics always.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), services) },
	}
	cmd.Flags().StringVar(&services, "services", "all", "comma-separated services to run: all, or any of "+moduleNames())
	return cmd
}

func moduleNames() string {
	s := ""
	for i, m := range modules() {
		if i > 0 {
			s += ", "
		}
		s += m.name
	}
	return s
}

func serve(ctx context.Context, services string) error {
	cfg, log, err := loadPlatform(os.Stdout)
	if err != nil {
		return err
	}
	enabled, err := selectServices(services)
	if err != nil {
		return err
	}
	tel, err := telemetry.Setup(ctx, "nexusrag")
	if err != nil {
		return err
	}
	a := &app{cfg: cfg, log: log, tel: tel, enabled: enabled, http: http.NewServeMux(), conns: map[string]*grpc.ClientConn{}}
	a.grpc = grpcx.NewServer(grpcx.ServerOptions{Log: log, Telemetry: tel, OnForbidden: a.onForbidden})
	if a.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("GRPC_ADDR: listen on %s: %w", cfg.GRPCAddr, err)
	}
	if a.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		_ = a.grpcLis.Close()
		return fmt.Errorf("HTTP_ADDR: listen on %s: %w", cfg.HTTPAddr, err)
	}
	a.http.Handle("/metrics", metricsHandler(tel))
	for _, m := range modules() {
		if !enabled[m.name] {
			continue
		}
		if err := m.init(ctx, a); err != nil {
			_ = a.grpcLis.Close()
			_ = a.httpLis.Close()
			a.close()
			return fmt.Errorf("start %s: %w", m.name, err)
		}
	}
	if !enabled["gateway"] {
		a.http.Handle("/", http.NotFoundHandler())
	}
	return a.run(ctx)
}

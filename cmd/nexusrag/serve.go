package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
)

func serveCmd() *cobra.Command {
	var services string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run NexusRAG services (all of them by default)",
		Long: `Run NexusRAG services in this process. --services picks a subset (for one
Deployment per service); services not run here are reached at <NAME>_GRPC_ADDR.
Every gRPC service of the process shares GRPC_ADDR (127.0.0.1:9000 by default;
health answers anyone, every other method needs an API key or a service token);
HTTP_ADDR serves the REST API when the gateway runs here; METRICS_ADDR serves
/metrics (and /debug/pprof with PPROF_ENABLED). A process that does not run every
service needs SERVICE_AUTH_KEYS_FILE, shared with the processes it talks to.`,
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
	if cfg.DebugAddr != "" {
		log.Warn("DEBUG_ADDR is retired: pprof is served on METRICS_ADDR (set PPROF_ENABLED=true instead)", "metrics_addr", cfg.MetricsAddr)
	}
	tel, err := telemetry.Setup(ctx, "nexusrag")
	if err != nil {
		return err
	}
	a := &app{cfg: cfg, log: log, tel: tel, enabled: enabled, http: http.NewServeMux(), conns: map[string]*grpc.ClientConn{}, memLis: grpcx.NewMemListener()}
	if err := a.listen(ctx); err != nil {
		a.closeListeners()
		a.close()
		return err
	}
	for _, m := range modules() {
		if !enabled[m.name] {
			continue
		}
		if err := m.init(ctx, a); err != nil {
			a.closeListeners()
			a.close()
			return fmt.Errorf("start %s: %w", m.name, err)
		}
	}
	return a.run(ctx)
}

// listen sets up what every process has: its service credentials, the gRPC server and
// its listeners, the operator listener, and the HTTP listener when the gateway runs here.
func (a *app) listen(ctx context.Context) error {
	var err error
	if a.keys, err = a.serviceKeys(); err != nil {
		return err
	}
	a.tokens = svcauth.NewIssuer(a.keys, strings.Join(a.serviceNames(), ","), a.cfg.ServiceTokenTTL)
	if a.cfg.GRPCTLSCAFile != "" || a.cfg.GRPCTLSServerName != "" {
		if a.clientTLS, err = grpcx.ClientTLS(a.cfg.GRPCTLSCAFile, a.cfg.GRPCTLSServerName); err != nil {
			return err
		}
	}
	apiKeys, err := a.apiKeys(ctx)
	if err != nil {
		return err
	}
	a.grpc = grpcx.NewServer(grpcx.ServerOptions{Log: a.log, Telemetry: a.tel, Keys: a.keys, APIKeys: apiKeys, OnForbidden: a.onForbidden})
	if a.grpcLis, err = net.Listen("tcp", a.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("GRPC_ADDR: listen on %s: %w", a.cfg.GRPCAddr, err)
	}
	if a.cfg.GRPCTLSCertFile != "" {
		tlsCfg, err := grpcx.ServerTLS(a.cfg.GRPCTLSCertFile, a.cfg.GRPCTLSKeyFile)
		if err != nil {
			return err
		}
		a.grpcLis = grpcx.ListenTLS(a.grpcLis, tlsCfg)
	}
	if a.metrics, err = net.Listen("tcp", a.cfg.MetricsAddr); err != nil {
		return fmt.Errorf("METRICS_ADDR: listen on %s: %w", a.cfg.MetricsAddr, err)
	}
	if a.enabled["gateway"] {
		if a.httpLis, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("HTTP_ADDR: listen on %s: %w", a.cfg.HTTPAddr, err)
		}
	}
	return nil
}

// closeListeners releases the listeners of a process that fails to start.
func (a *app) closeListeners() {
	for _, l := range []net.Listener{a.grpcLis, a.metrics, a.httpLis} {
		if l != nil {
			_ = l.Close()
		}
	}
}

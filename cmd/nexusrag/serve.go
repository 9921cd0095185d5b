package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/pkg/telemetry"
	"github.com/nexusrag/nexusrag/services/gateway"
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
service needs SERVICE_AUTH_KEYS_FILE, shared with the processes it talks to.
` + "`nexusrag modules`" + ` lists what can run and what each part needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), services) },
	}
	cmd.Flags().StringVar(&services, "services", "all", "comma-separated services to run: all, or any of "+strings.Join(modules().serviceNames(), ", "))
	return cmd
}

// serveTargets are the modules of `serve --services`: the operator listener first (it
// stops last), the services, the audit recorder, the gRPC listener, and the HTTP edge
// when the gateway runs here.
func serveTargets(services []string) []string {
	targets := append(append([]string{modMetrics}, services...), modAudit, modGRPCListener)
	for _, s := range services {
		switch s {
		case "gateway":
			targets = append(targets, modHTTP)
		case "governance":
			targets = append(targets, modGovernanceWork)
		}
	}
	return targets
}

func serve(ctx context.Context, flag string) error {
	cfg, log, err := loadPlatform(os.Stdout)
	if err != nil {
		return err
	}
	reg := modules()
	services, err := reg.selectServices(flag)
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
	p, err := reg.plan(serveTargets(services))
	if err != nil {
		return err
	}
	a, err := newApp(cfg, log, tel, reg, p)
	if err != nil {
		return err
	}
	if err := a.start(ctx); err != nil {
		return err
	}
	log.Info("nexusrag ready", a.readyAttrs()...)
	failure := a.wait(ctx)
	if failure != nil {
		log.Error("a server failed; shutting down", "error", failure)
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	if err := a.stop(); err != nil {
		log.Error("shutdown incomplete", "error", err)
	}
	if failure != nil {
		return failure
	}
	log.Info("stopped")
	return nil
}

// openApp starts the modules an operator command needs and everything they depend on,
// services included, in this process: the same application as `serve`, without
// listeners, its services reached over memory. Stop it with app.stop.
func openApp(ctx context.Context, targets ...string) (*app, error) {
	cfg, log, err := loadPlatform(os.Stderr)
	if err != nil {
		return nil, err
	}
	reg := modules()
	p, err := reg.planAlone(targets)
	if err != nil {
		return nil, err
	}
	tel, err := telemetry.Setup(ctx, "nexusrag-cli")
	if err != nil {
		return nil, err
	}
	a, err := newApp(cfg, log, tel, reg, p)
	if err != nil {
		return nil, err
	}
	a.command = true
	if err := a.start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func modulesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "modules",
		Short: "List every module of the binary, what it depends on and, for services, what they serve",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			reg := modules()
			if err := reg.validate(); err != nil {
				return err
			}
			return printModules(os.Stdout, reg)
		},
	}
}

func openapiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "openapi",
		Short: "Print the OpenAPI 3.0 document the gateway serves at /v1/openapi.json (the SDKs are generated from it)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			backends, err := backendsOf(modules(), nil)
			if err != nil {
				return err
			}
			doc, err := gateway.Document(backends)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(os.Stdout, "%s\n", doc)
			return err
		},
	}
}

func printModules(w io.Writer, reg registry) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tKIND\tDEPENDS ON\tSERVES\tADDRESS WHEN ELSEWHERE")
	for _, m := range reg {
		kind, serves, addr := "infrastructure", "-", "-"
		if m.service != nil {
			kind, addr = "service", addrVariable(m.name)
			var names []string
			for _, sv := range append([]*service{m.service}, m.service.also...) {
				n := sv.desc.ServiceName
				if sv.rest != nil {
					n += " (+REST)"
				}
				names = append(names, n)
			}
			serves = strings.Join(names, ", ")
		}
		deps := reg.depsOf(m, map[string]bool{})
		if m.servesAll {
			deps = append(deps, "every service of the process")
		}
		if len(deps) == 0 {
			deps = []string{"-"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.name, kind, strings.Join(deps, ", "), serves, addr)
	}
	return tw.Flush()
}

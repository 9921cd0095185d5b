package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
)

func names(ms []module) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}

// TestStartOrderFollowsDependencies: in every shape, each module starts after what it
// depends on (so it stops before), and only services outside the process need addresses.
func TestStartOrderFollowsDependencies(t *testing.T) {
	reg := modules()
	require.NoError(t, reg.validate())
	shapes := map[string][]string{
		"all":                  reg.serviceNames(),
		"gateway":              {"gateway"},
		"retrieval":            {"retrieval"},
		"governance":           {"governance"},
		"ingest,run":           {"ingest", "run"},
		"governance,retrieval": {"governance", "retrieval"},
	}
	for shape, services := range shapes {
		t.Run(shape, func(t *testing.T) {
			p, err := reg.plan(serveTargets(services))
			require.NoError(t, err)
			order := names(p.order)
			local := map[string]bool{}
			for _, s := range services {
				local[s] = true
			}
			for i, m := range p.order {
				for _, d := range reg.depsOf(m, local) {
					if reg.isService(d) && !local[d] {
						require.Contains(t, p.remote, d, "%s needs %s from elsewhere", m.name, d)
						continue
					}
					require.Contains(t, order[:i], d, "%s starts after %s", m.name, d)
				}
			}
			require.Equal(t, modMetrics, order[0], "the operator listener starts first and stops last")
			for _, s := range services {
				require.Less(t, slices.Index(order, s), slices.Index(order, modGRPCListener), "%s registers before the listener opens", s)
			}
			require.Equal(t, slices.Contains(services, "gateway"), slices.Contains(order, modHTTP))
		})
	}
	p, err := reg.plan(serveTargets([]string{"ingest"}))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"governance", "retrieval", "billing", "ops"}, p.remote,
		"billing: the plans behind its feature-gated stats; ops: the kill switches")
	// Calls impose no order: governance's feature checks ask billing, which audits
	// through governance; alone, each reaches the other by its address.
	p, err = reg.plan(serveTargets([]string{"governance"}))
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"billing", "run", "ingest"}, p.remote, "run and ingest: the rows retention and DSARs purge")
	p, err = reg.plan(serveTargets([]string{"billing"}))
	require.NoError(t, err)
	require.Equal(t, []string{"governance"}, p.remote)

	// An operator command that audits runs governance, but not the services governance's
	// background work calls (nor ingest's worker with them).
	p, err = reg.planAlone([]string{modAudit})
	require.NoError(t, err)
	var names []string
	for _, m := range p.order {
		names = append(names, m.name)
	}
	require.Contains(t, names, "governance")
	require.NotContains(t, names, "ingest")
	require.NotContains(t, names, "run")
	require.NotContains(t, names, modGovernanceWork)
}

// A service with a method that names a plan feature runs where the entitlement cache
// does: otherwise its gRPC server would leave the feature unchecked.
func TestFeatureGatedServicesCheckEntitlements(t *testing.T) {
	reg := modules()
	gated := 0
	for _, m := range reg.services() {
		needs := false
		for _, md := range m.service.desc.Methods {
			if grpcx.MethodAccess("/"+m.service.desc.ServiceName+"/"+md.MethodName).GetFeature() != "" {
				needs = true
			}
		}
		if !needs {
			continue
		}
		gated++
		p, err := reg.plan(serveTargets([]string{m.name}))
		require.NoError(t, err)
		require.Contains(t, names(p.order), modEntitlements, "%s serves a feature-gated method without the entitlement cache", m.name)
	}
	require.Positive(t, gated, "governance's ListAuditEvents names feature.audit_access")
}

func TestPlanNamesCyclesAndUnknownModules(t *testing.T) {
	nop := func(context.Context, *app) error { return nil }
	tests := []struct {
		name string
		reg  registry
		want string
	}{
		{"cycle", registry{{name: "a", deps: []string{"b"}, init: nop}, {name: "b", deps: []string{"c"}, init: nop}, {name: "c", deps: []string{"a"}, init: nop}},
			"module dependency cycle: a -> b -> c -> a"},
		{"unknown dependency", registry{{name: "a", deps: []string{"postgress"}, init: nop}}, `module a depends on unknown module "postgress"`},
		{"itself", registry{{name: "a", deps: []string{"a"}, init: nop}}, "module a lists itself as a dependency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.EqualError(t, tt.reg.validate(), tt.want)
		})
	}
	_, err := modules().plan([]string{"search"})
	require.ErrorContains(t, err, `unknown module "search"`)
	_, err = modules().selectServices("gateway,search")
	require.ErrorContains(t, err, `unknown service "search" (available: all, governance, retrieval, ingest, run, failover, billing, ops, ui, gateway)`)
	got, err := modules().selectServices(" Run,all ")
	require.NoError(t, err)
	require.Equal(t, modules().serviceNames(), got, "registry order, once each")
}

// echo is a service that exists only in this test: adding it to the registry must be
// enough for it to be migrated, probed by /v1/health, fronted by the gateway and looked
// up at ECHO_GRPC_ADDR.
var echoDesc = &grpc.ServiceDesc{ServiceName: "nexusrag.echo.v1.EchoService", HandlerType: (*any)(nil)}

func withEcho(reg registry) registry {
	echo := module{name: "echo", deps: []string{modGRPCServer}, init: func(_ context.Context, a *app) error {
		a.grpc.Register(echoDesc, struct{}{})
		return nil
	}, service: &service{desc: echoDesc, migrations: func() pgstore.Migrations {
		return pgstore.Migrations{Schema: "echo", FS: fstest.MapFS{"00001_pings.sql": {Data: []byte(
			"-- +goose Up\nCREATE TABLE echo.pings (id int);\n-- +goose Down\nDROP TABLE echo.pings;\n")}}}
	}}}
	i := slices.IndexFunc(reg, func(m module) bool { return m.name == "gateway" })
	return slices.Insert(reg, i, echo)
}

// TestRegistryDrivesProbesMigrationsAndAddresses starts the real application with one
// more registry entry.
func TestRegistryDrivesProbesMigrationsAndAddresses(t *testing.T) {
	reg := withEcho(modules())
	dbURL := pgtest.NewDatabase(t)
	_, prefix := redistest.New(t)
	for k, v := range map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": redistest.URL(), "REDIS_KEY_PREFIX": prefix,
		"HTTP_ADDR": "127.0.0.1:0", "GRPC_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "RL_ENABLED": "false",
		"AWS_EC2_METADATA_DISABLED": "true", "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/gcp-credentials.json"} {
		t.Setenv(k, v)
	}
	cfg, err := config.Parse[platformConfig](nil)
	require.NoError(t, err)
	ctx := context.Background()

	// Migrations: the new schema is created with the others.
	pool, err := pgstore.Connect(ctx, dbURL, pgstore.Options{})
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, pgstore.Migrate(ctx, pool, logging.Discard(), reg.migrationSets()...))
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass('echo.pings') IS NOT NULL`).Scan(&exists))
	require.True(t, exists, "echo's migration ran")

	// Health probes and the gateway's backends: /v1/health reports echo.
	tel, err := telemetry.Setup(ctx, "test")
	require.NoError(t, err)
	p, err := reg.plan(serveTargets(reg.serviceNames()))
	require.NoError(t, err)
	a, err := newApp(cfg, logging.Discard(), tel, reg, p)
	require.NoError(t, err)
	require.NoError(t, a.start(ctx))
	defer func() { require.NoError(t, a.stop()) }()
	res, err := http.Get("http://" + a.httpLis.Addr().String() + "/v1/health")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	var health struct {
		Data struct {
			Services map[string]struct{ Status string } `json:"services"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &health))
	require.Equal(t, "ok", health.Data.Services["echo"].Status)
	probes := 0
	for _, m := range reg.services() {
		probes += 1 + len(m.service.also)
	}
	require.Len(t, health.Data.Services, probes, "every gRPC service of every module is probed")

	// Addresses: a gateway alone needs ECHO_GRPC_ADDR like the others.
	alone, err := reg.plan(serveTargets([]string{"gateway"}))
	require.NoError(t, err)
	require.Contains(t, alone.remote, "echo")
	for _, s := range alone.remote {
		t.Setenv(addrVariable(s), "127.0.0.1:1")
	}
	t.Setenv("ECHO_GRPC_ADDR", "")
	_, err = newApp(cfg, logging.Discard(), tel, reg, alone)
	require.EqualError(t, err, "ECHO_GRPC_ADDR is required: service echo does not run in this process")
	t.Setenv("ECHO_GRPC_ADDR", "echo.nexusrag.svc:9000")
	b, err := newApp(cfg, logging.Discard(), tel, reg, alone)
	require.NoError(t, err)
	require.Equal(t, "echo.nexusrag.svc:9000", b.addrs["echo"])
}

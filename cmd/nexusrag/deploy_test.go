package main

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
)

// composeEnv is the whole environment docker-compose.yml is interpolated with here: the
// one variable it requires. Nothing of the test's own environment (DATABASE_URL, ...)
// and no .env file leaks in, so the defaults written in the file are what is checked.
var composeEnv = map[string]string{"SERVICE_AUTH_KEYS": "dGVzdC1vbmx5LXNlcnZpY2Uta2V5LTMyLWJ5dGVzLWxvbmc"}

// loadCompose loads docker-compose.yml as `docker compose` does: the compose-spec
// schema, interpolation, merge keys and the consistency checks (depends_on, volumes).
func loadCompose(env map[string]string) (*types.Project, error) {
	dir, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: env,
	})
}

// runsNexusRAG: a compose service of the project's image (built here), not a dependency's.
func runsNexusRAG(s types.ServiceConfig) bool {
	return s.Build != nil
}

// TestComposeFile: docker-compose.yml is valid compose, mirrors the split overlay (one
// container per service, the gateway's with ops and ui), pins its images, publishes the
// gateway on 8000 and starts each thing once what it needs is ready. Not run: the build
// machines have no Docker engine (ADR 0002).
func TestComposeFile(t *testing.T) {
	_, err := loadCompose(map[string]string{})
	require.ErrorContains(t, err, "SERVICE_AUTH_KEYS", "the service key is the user's, never a default in the file")

	p, err := loadCompose(composeEnv)
	require.NoError(t, err)
	split := renderOverlay(t, "split")
	var k8sShape, composeShape [][]string
	for _, d := range split.deployments {
		k8sShape = append(k8sShape, hostedServices(t, d.Spec.Template.Spec.Containers[0]))
	}
	for name, s := range p.Services {
		_, tag := imageTag(s.Image)
		require.NotEmpty(t, tag, "service %s: image %s has no tag", name, s.Image)
		require.NotEqual(t, "latest", tag, "service %s", name)
		require.NotEmpty(t, s.Restart, "service %s", name)
		services := servedBy(t, s.Command)
		if services == nil {
			continue
		}
		composeShape = append(composeShape, services)
		require.True(t, runsNexusRAG(s), name)
		require.Equal(t, "service_completed_successfully", s.DependsOn["migrate"].Condition, "%s starts after the migrations", name)
		require.Equal(t, "service_healthy", s.DependsOn["redis"].Condition, name)
		require.NotNil(t, s.HealthCheck, name)
		require.Equal(t, types.HealthCheckTest{"CMD", "/nexusrag", "healthcheck"}, s.HealthCheck.Test, name)
		if slices.Contains(services, "ingest") {
			require.Contains(t, []string{"ingest", "failover"}, s.Build.Target, "%s hosts ingest: it needs pdftotext", name)
		}
		if slices.Contains(services, "failover") {
			require.Equal(t, "failover", s.Build.Target, "%s hosts failover: it needs pg_dump", name)
		}
		published := slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 8000 && pc.Published == "8000" })
		require.Equal(t, slices.Contains(services, "gateway"), published, "%s: the gateway, and only it, is published on :8000", name)
	}
	require.ElementsMatch(t, k8sShape, composeShape, "compose runs the split overlay's processes")

	migrate := p.Services["migrate"]
	require.Equal(t, types.ShellCommand{"migrate"}, migrate.Command)
	require.Equal(t, "service_healthy", migrate.DependsOn["postgres"].Condition)
	for _, dep := range []string{"postgres", "redis"} {
		require.NotNil(t, p.Services[dep].HealthCheck, dep)
		require.NotEmpty(t, p.Services[dep].HealthCheck.Test, dep)
	}
	require.Contains(t, p.Services["postgres"].Image, "pgvector", "the retrieval schema needs the vector extension")
}

// TestEveryServiceHasAWorkload: each service of the registry runs in a Deployment of the
// split overlay, in the all-in-one Deployment and in a docker-compose service; and every
// process that calls a service it does not run is told where it is (<NAME>_GRPC_ADDR),
// at an address that reaches the pods or container running it.
func TestEveryServiceHasAWorkload(t *testing.T) {
	for _, overlay := range overlays {
		o := renderOverlay(t, overlay)
		hostedBy := map[string][]string{}
		for _, d := range o.deployments {
			c := d.Spec.Template.Spec.Containers[0]
			services := hostedServices(t, c)
			for _, s := range services {
				hostedBy[s] = append(hostedBy[s], d.Name)
			}
			for _, peer := range peersOf(t, services) {
				v := addrVariable(peer)
				addr := envValue(c, v)
				require.NotEmpty(t, addr, "%s: Deployment %s runs --services=%s, which calls %s: it needs %s", overlay, d.Name, strings.Join(services, ","), peer, v)
				requireK8sAddressReaches(t, o, addr, peer, overlay+": "+d.Name+" "+v)
			}
		}
		for _, s := range modules().serviceNames() {
			require.Len(t, hostedBy[s], 1, "%s: one Deployment runs --services with %s", overlay, s)
		}
	}

	p, err := loadCompose(composeEnv)
	require.NoError(t, err)
	hostedBy := map[string][]string{}
	for name, s := range p.Services {
		services := servedBy(t, s.Command)
		for _, svc := range services {
			hostedBy[svc] = append(hostedBy[svc], name)
		}
		for _, peer := range peersOf(t, services) {
			v := addrVariable(peer)
			addr := s.Environment[v]
			require.NotNil(t, addr, "docker-compose.yml: %s runs %s, which calls %s: it needs %s", name, strings.Join(services, ","), peer, v)
			host, port, err := net.SplitHostPort(*addr)
			require.NoError(t, err, "%s %s", name, v)
			target, ok := p.Services[host]
			require.True(t, ok, "docker-compose.yml: %s %s=%s names no service", name, v, *addr)
			require.Contains(t, servedBy(t, target.Command), peer, "docker-compose.yml: %s %s=%s: %s does not run %s", name, v, *addr, host, peer)
			listen := target.Environment["GRPC_ADDR"]
			require.NotNil(t, listen, "docker-compose.yml: %s sets no GRPC_ADDR (loopback by default)", host)
			_, listenPort, err := net.SplitHostPort(*listen)
			require.NoError(t, err)
			require.Equal(t, listenPort, port, "docker-compose.yml: %s %s=%s, but %s listens on %s", name, v, *addr, host, *listen)
		}
	}
	for _, s := range modules().serviceNames() {
		require.Len(t, hostedBy[s], 1, "docker-compose.yml: one service runs `serve` with %s", s)
	}
}

// requireK8sAddressReaches: addr (host:port) is a Service of the overlay, on a port that
// leads to the gRPC port of pods running service.
func requireK8sAddressReaches(t *testing.T, o k8sObjects, addr, service, what string) {
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, what)
	i := slices.IndexFunc(o.services, func(s corev1.Service) bool { return s.Name == host })
	require.GreaterOrEqual(t, i, 0, "%s=%s: no Service %s", what, addr, host)
	svc := o.services[i]
	j := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "grpc" })
	require.GreaterOrEqual(t, j, 0, "%s: Service %s has no grpc port", what, host)
	require.Equal(t, port, strconv.Itoa(int(svc.Spec.Ports[j].Port)), "%s=%s: Service %s serves gRPC on %d", what, addr, host, svc.Spec.Ports[j].Port)
	selected := o.selected(svc.Spec.Selector)
	require.NotEmpty(t, selected, what)
	for _, d := range selected {
		require.Contains(t, hostedServices(t, d.Spec.Template.Spec.Containers[0]), service,
			"%s=%s: Service %s selects Deployment %s, which does not run %s", what, addr, host, d.Name, service)
	}
}

// TestDeploymentEnvIsDocumented: every variable the Kubernetes manifests or the compose
// file give the product is in .env.example, the one list of its settings.
func TestDeploymentEnvIsDocumented(t *testing.T) {
	documented := documentedEnv(t)
	used := k8sEnv(t)
	p, err := loadCompose(composeEnv)
	require.NoError(t, err)
	for name, s := range p.Services {
		if !runsNexusRAG(s) {
			continue // postgres' and redis' own settings
		}
		for k := range s.Environment {
			used[k] = "docker-compose.yml service " + name
		}
	}
	require.NotEmpty(t, used)
	for k, where := range used {
		require.True(t, documented[k], "%s (%s) is not documented in .env.example", k, where)
	}
}

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

// module is one part of a process, in the sense of Loki's module manager: the product's
// services and the infrastructure they stand on (the Postgres pool, the gRPC server, the
// audit recorder, ...). A process names the modules it wants; the registry adds their
// dependencies, starts them in dependency order and stops them in the reverse one.
type module struct {
	name string
	// deps must be started before this module. A dependency on a service that the process
	// does not run is met by its address, <NAME>_GRPC_ADDR, instead.
	deps []string
	// calls are services this module calls that need not start before it: each runs in
	// the process or is reached at <NAME>_GRPC_ADDR, with no start order between them
	// (connections are lazy and no call is made before the process serves). Two modules
	// may call each other this way: billing audits through governance, whose feature
	// checks ask billing.
	calls []string
	// fronts adds every other service to deps (the gateway fronts them all).
	fronts bool
	// servesAll adds every service the process runs to deps (the gRPC listener opens
	// only once they are registered, and drains before they stop).
	servesAll bool
	init      func(ctx context.Context, a *app) error
	// service is set on the product's services, nil on infrastructure.
	service *service
}

// service is what a service module exposes, from which the rest is derived: the gRPC
// service it serves (health probes, the gateway's backends), its grpc-gateway routes,
// and its schema's migrations.
type service struct {
	desc       *grpc.ServiceDesc
	rest       func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error // nil: no REST routes
	migrations func() pgstore.Migrations
	// also are more gRPC services of the same module (same process, same address).
	also []*service
}

// registry is an ordered set of modules.
type registry []module

func (r registry) get(name string) (module, bool) {
	i := slices.IndexFunc(r, func(m module) bool { return m.name == name })
	if i < 0 {
		return module{}, false
	}
	return r[i], true
}

// services are the service modules, in registry order.
func (r registry) services() []module {
	var out []module
	for _, m := range r {
		if m.service != nil {
			out = append(out, m)
		}
	}
	return out
}

func (r registry) serviceNames() []string {
	var out []string
	for _, m := range r.services() {
		out = append(out, m.name)
	}
	return out
}

func (r registry) isService(name string) bool {
	m, ok := r.get(name)
	return ok && m.service != nil
}

// depsOf is a module's dependencies in a process running the services in local.
func (r registry) depsOf(m module, local map[string]bool) []string {
	deps := slices.Clone(m.deps)
	for _, s := range r.services() {
		if (m.fronts && s.name != m.name) || (m.servesAll && local[s.name]) {
			deps = append(deps, s.name)
		}
	}
	return deps
}

// plan is what a process runs: its modules in start order, and the services it calls in
// other processes.
type plan struct {
	order  []module
	remote []string
}

// plan resolves targets (module names) into start order for a process that runs the
// services among them; the services they depend on run elsewhere. A dependency cycle or
// an unknown name is an error that names it.
func (r registry) plan(targets []string) (plan, error) {
	local := map[string]bool{}
	for _, t := range targets {
		if r.isService(t) {
			local[t] = true
		}
	}
	return r.planWith(targets, local)
}

// planAlone is plan for a process that also runs every service its targets depend on
// (an operator command that needs no running platform).
func (r registry) planAlone(targets []string) (plan, error) {
	everything := map[string]bool{}
	for _, s := range r.serviceNames() {
		everything[s] = true
	}
	all, err := r.planWith(targets, everything)
	if err != nil {
		return plan{}, err
	}
	local := map[string]bool{}
	for _, m := range all.order {
		if m.service != nil {
			local[m.name] = true
		}
	}
	return r.planWith(targets, local)
}

func (r registry) planWith(targets []string, local map[string]bool) (plan, error) {
	var p plan
	var called []string       // local services modules call, visited after the targets
	state := map[string]int{} // 0 new, 1 visiting, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		m, ok := r.get(name)
		if !ok {
			if len(path) == 0 {
				return fmt.Errorf("unknown module %q (known: %s)", name, strings.Join(r.names(), ", "))
			}
			return fmt.Errorf("module %s depends on unknown module %q", path[len(path)-1], name)
		}
		if m.service != nil && !local[name] {
			if !slices.Contains(p.remote, name) {
				p.remote = append(p.remote, name)
			}
			return nil
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(path, " -> "), name)
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range r.depsOf(m, local) {
			if d == name {
				return fmt.Errorf("module %s lists itself as a dependency", name)
			}
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		for _, c := range m.calls {
			switch {
			case !r.isService(c):
				return fmt.Errorf("module %s calls %q, which is not a service", name, c)
			case local[c]:
				called = append(called, c)
			case !slices.Contains(p.remote, c):
				p.remote = append(p.remote, c)
			}
		}
		state[name] = 2
		p.order = append(p.order, m)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, nil); err != nil {
			return plan{}, err
		}
	}
	for len(called) > 0 { // visiting one may call more
		c := called[0]
		called = called[1:]
		if err := visit(c, nil); err != nil {
			return plan{}, err
		}
	}
	return p, nil
}

func (r registry) names() []string {
	out := make([]string, len(r))
	for i, m := range r {
		out[i] = m.name
	}
	return out
}

// validate checks the whole table: every dependency exists and nothing is circular.
func (r registry) validate() error {
	_, err := r.plan(r.names())
	return err
}

// migrationSets are the schemas' migrations: database-wide prerequisites, then each
// service's, in registry order.
func (r registry) migrationSets() []pgstore.Migrations {
	sets := []pgstore.Migrations{pgstore.Platform()}
	for _, m := range r.services() {
		if m.service.migrations != nil {
			sets = append(sets, m.service.migrations())
		}
	}
	return sets
}

// addrVariable is the environment variable that says where a service runs when it is
// not in this process.
func addrVariable(service string) string {
	return strings.ToUpper(strings.ReplaceAll(service, "-", "_")) + "_GRPC_ADDR"
}

// selectServices parses --services: a comma-separated list of services, or "all". The
// result is in registry order, each service once.
func (r registry) selectServices(flag string) ([]string, error) {
	chosen := map[string]bool{}
	for _, s := range strings.Split(flag, ",") {
		s = strings.TrimSpace(strings.ToLower(s))
		switch {
		case s == "":
		case s == "all":
			for _, name := range r.serviceNames() {
				chosen[name] = true
			}
		case r.isService(s):
			chosen[s] = true
		default:
			return nil, fmt.Errorf("--services: unknown service %q (available: all, %s)", s, strings.Join(r.serviceNames(), ", "))
		}
	}
	var out []string
	for _, name := range r.serviceNames() {
		if chosen[name] {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--services: name at least one service")
	}
	return out, nil
}

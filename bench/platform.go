package main

import (
	"context"
	"os"
	"time"

	"github.com/nexusrag/nexusrag/internal/launch"
)

// benchEnv is the running platform and its database.
type benchEnv struct {
	*launch.Env
	httpURL  string
	grpcAddr string
	key      string
	serve    *launch.Process
	duration time.Duration
	clients  int
}

func adminURL() string {
	if u := os.Getenv("NEXUSRAG_BENCH_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// setup creates and migrates a database, creates a key and starts `nexusrag serve` with
// its logs discarded (the default log level still formats them).
func setup(ctx context.Context) (*benchEnv, error) {
	// Rate limiting stays on, since its Redis check is part of every request's cost, with
	// buckets no benchmark empties.
	var limits []string
	for _, class := range []string{"RUN", "MUTATION", "READ", "OPS"} {
		limits = append(limits, "RL_"+class+"_KEY=1000000/1000000", "RL_"+class+"_TENANT=1000000/1000000")
	}
	le, err := launch.Setup(ctx, launch.Options{AdminURL: adminURL(), Name: "bench", Env: append(limits, "AUDIT_ACCESS_SUCCESS_INTERVAL=60s", "DEFAULT_PLAN_ID=enterprise")})
	if err != nil {
		return nil, err
	}
	e := &benchEnv{Env: le}
	if e.key, err = createKey(e, "reader"); err != nil {
		e.Close()
		return nil, err
	}
	p, stop, err := e.serveWith()
	if err != nil {
		e.Close()
		return nil, err
	}
	e.OnClose(stop)
	e.serve, e.httpURL, e.grpcAddr = p, p.HTTPURL, p.GRPCAddr
	return e, nil
}

// serveWith starts another `nexusrag serve` on the bench database with extra environment
// (KEY=value, overriding the bench's), for a suite that needs its own settings; stop
// interrupts it and waits.
func (e *benchEnv) serveWith(extra ...string) (*launch.Process, func(), error) {
	p, err := e.Serve(nil, nil, extra...)
	if err != nil {
		return nil, nil, err
	}
	return p, func() { _ = p.Stop(30 * time.Second) }, nil
}

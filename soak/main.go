// Command soak is `make soak`: it starts the built nexusrag binary as two processes (the
// whole platform, and a second ingest worker) on a database and a redis-server of its
// own, puts N clients of several tenants on it for a while (runs, uploads, reads,
// reindexes, deletes) while a fault schedule restarts Redis, terminates the Postgres
// backends and kills the second worker, then waits for the ingestion to settle and
// checks what was stored against what the clients were told. It prints a report and
// exits non-zero when an answer was an undocumented 5xx, a run ended INTERNAL, a
// document was lost or duplicated, a data race was reported, or goroutines grew.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/internal/launch"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

// settings are the soak's flags.
type settings struct {
	bin        string
	clients    int
	tenants    int
	duration   time.Duration
	faultEvery time.Duration
	window     time.Duration
	settle     time.Duration
	logDir     string
}

func main() {
	var s settings
	flag.StringVar(&s.bin, "bin", "bin/nexusrag", "the built binary (make soak builds it with -race)")
	flag.IntVar(&s.clients, "clients", 8, "concurrent clients")
	flag.IntVar(&s.tenants, "tenants", 3, "tenants the clients are spread over")
	flag.DurationVar(&s.duration, "duration", 2*time.Minute, "how long the clients put load on the platform")
	flag.DurationVar(&s.faultEvery, "fault-every", 12*time.Second, "time between faults (Redis restart, Postgres backends terminated, worker killed, in turn)")
	flag.DurationVar(&s.window, "window", 30*time.Second, "the time windows of the latency table")
	flag.DurationVar(&s.settle, "settle", 3*time.Minute, "the longest wait for ingestion to settle once the load stops")
	flag.StringVar(&s.logDir, "logs", "var/soak", "where the processes' logs are kept")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failures, err := soak(ctx, s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if len(failures) > 0 {
		fmt.Printf("SOAK FAILED: %d finding(s)\n", len(failures))
		for _, f := range failures {
			fmt.Println("  -", f)
		}
		os.Exit(1)
	}
	fmt.Println("SOAK PASSED")
}

func adminURL() string {
	if u := os.Getenv("NEXUSRAG_SOAK_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// platform is what the soak runs: Redis, the database, the two processes.
type platform struct {
	env    *launch.Env
	redis  *launch.Redis
	db     *pgxpool.Pool
	logDir string

	mu     sync.Mutex
	main   *launch.Process // serve: every module
	worker *launch.Process // serve --services=ingest: a second worker
	starts int             // worker starts, for log file names
}

func soak(ctx context.Context, s settings) ([]string, error) {
	started := time.Now()
	rds, err := launch.StartRedis()
	if err != nil {
		return nil, err
	}
	defer rds.Kill()
	// Short ingestion timeouts, so that the jobs a killed worker held and those a restarted
	// Redis lost are redone within the soak; buckets no client empties (rate limiting stays
	// on: with Redis down it lets requests through, degraded).
	vars := []string{"REDIS_URL=" + rds.URL(), "PPROF_ENABLED=true", "OTEL_TRACES_EXPORTER=none",
		"INGEST_CLAIM_TIMEOUT=5s", "INGEST_REQUEUE_AFTER=15s", "INGEST_REQUEUE_GRACE=2s",
		"AUDIT_ACCESS_SUCCESS_INTERVAL=60s", "SHUTDOWN_TIMEOUT=20s",
		// No cloud here: SDKs find no credentials and never probe metadata servers.
		"AWS_EC2_METADATA_DISABLED=true", "GOOGLE_APPLICATION_CREDENTIALS=/nonexistent/gcp-credentials.json"}
	for _, class := range []string{"RUN", "MUTATION", "READ", "OPS"} {
		vars = append(vars, "RL_"+class+"_KEY=1000000/1000000", "RL_"+class+"_TENANT=1000000/1000000")
	}
	env, err := launch.Setup(ctx, launch.Options{Bin: s.bin, AdminURL: adminURL(), Name: "soak", Env: vars})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	p := &platform{env: env, redis: rds, logDir: filepath.Join(s.logDir, started.UTC().Format("20060102T150405Z"))}
	if err := os.MkdirAll(p.logDir, 0o755); err != nil {
		return nil, err
	}
	if p.db, err = pgstore.Connect(ctx, env.DBURL, pgstore.Options{MaxConns: 4}); err != nil {
		return nil, err
	}
	defer p.db.Close()
	if err := p.startMain(); err != nil {
		return nil, err
	}
	defer p.stopAll()
	if err := p.startWorker(); err != nil {
		return nil, err
	}
	fmt.Printf("NexusRAG soak: %d clients over %d tenants for %s, a fault every %s; binary %s; logs in %s\n",
		s.clients, s.tenants, s.duration, s.faultEvery, s.bin, p.logDir)

	tenants, err := prepareTenants(ctx, p, s.tenants)
	if err != nil {
		return nil, err
	}
	clients := make([]*client, s.clients)
	for i := range clients {
		clients[i] = newClient(i, tenants[i%len(tenants)], p.main.HTTPURL)
	}
	// Warm-up: each client does one of each before the memory baseline is read.
	for _, c := range clients {
		c.warmUp(ctx)
	}
	before, err := launch.ReadMemory(ctx, p.main.Pid(), p.main.MetricsURL)
	if err != nil {
		return nil, err
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, s.duration)
	defer stopLoad()
	loadStart := time.Now()
	var faults []fault
	var faulting, load sync.WaitGroup
	faulting.Go(func() { faults = p.faultSchedule(loadCtx, loadStart, s.faultEvery) })
	for _, c := range clients {
		load.Go(func() { c.loop(loadCtx, loadStart) })
	}
	load.Wait()
	loadTime := time.Since(loadStart)
	faulting.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	atEnd, err := launch.ReadMemory(ctx, p.main.Pid(), p.main.MetricsURL)
	if err != nil {
		return nil, err
	}

	settleStart := time.Now()
	pending, err := p.settle(ctx, s.settle)
	if err != nil {
		return nil, err
	}
	settled := time.Since(settleStart)
	for _, c := range clients {
		c.http.CloseIdleConnections()
	}
	after, err := p.idleMemory(ctx, before)
	if err != nil {
		return nil, err
	}
	docs, err := p.verify(ctx, clients)
	if err != nil {
		return nil, err
	}
	races, err := p.raceReports()
	if err != nil {
		return nil, err
	}
	r := report{settings: s, clients: clients, faults: faults, loadTime: loadTime, settled: settled, pending: pending,
		before: before, atEnd: atEnd, after: after, docs: docs, races: races, logDir: p.logDir}
	r.print(os.Stdout)
	return r.failures(), nil
}

// prepareTenants makes, for each tenant, a corpus and an editor key the clients use.
func prepareTenants(ctx context.Context, p *platform, n int) ([]tenant, error) {
	var out []tenant
	for i := range n {
		t := tenant{id: fmt.Sprintf("soak-t%d", i+1), corpus: "c1"}
		admin, err := p.env.CreateKey(t.id, "admin", "soak-admin")
		if err != nil {
			return nil, err
		}
		if err := p.env.Unmetered(t.id); err != nil {
			return nil, err
		}
		if t.key, err = p.env.CreateKey(t.id, "editor", "soak-editor"); err != nil {
			return nil, err
		}
		api := launch.NewAPI(p.main.HTTPURL, admin, 1)
		if err := api.Call(ctx, "PATCH", "/v1/corpora/"+t.corpus, map[string]any{"allow_missing": true, "name": "Soak"}, nil); err != nil {
			return nil, err
		}
		api.HTTP.CloseIdleConnections()
		out = append(out, t)
	}
	return out, nil
}

func (p *platform) logFile(name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(p.logDir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

func (p *platform) startMain() error {
	logs, err := p.logFile("serve.log")
	if err != nil {
		return err
	}
	p.main, err = p.env.Serve(nil, logs)
	return err
}

// startWorker starts (again) the second ingest process; it reaches governance and
// retrieval in the main process.
func (p *platform) startWorker() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.starts++
	logs, err := p.logFile(fmt.Sprintf("worker-%d.log", p.starts))
	if err != nil {
		return err
	}
	p.worker, err = p.env.Serve([]string{"--services=ingest"}, logs, "GOVERNANCE_GRPC_ADDR="+p.main.GRPCAddr,
		"RETRIEVAL_GRPC_ADDR="+p.main.GRPCAddr, "BILLING_GRPC_ADDR="+p.main.GRPCAddr, "OPS_GRPC_ADDR="+p.main.GRPCAddr)
	return err
}

func (p *platform) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, proc := range []*launch.Process{p.worker, p.main} {
		if proc != nil {
			_ = proc.Stop(30 * time.Second)
		}
	}
}

// settle waits until no document is queued, processing or deleting, and returns how
// many still were when the wait ran out.
func (p *platform) settle(ctx context.Context, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		var n int
		err := p.db.QueryRow(ctx, `SELECT count(*) FROM ingest.documents WHERE status IN ('queued', 'processing', 'deleting')`).Scan(&n)
		if err != nil {
			return 0, err
		}
		if n == 0 || time.Now().After(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// idleMemory reads the main process's memory once the load has stopped, waiting a few
// seconds for connections the clients closed to be seen closed.
func (p *platform) idleMemory(ctx context.Context, before launch.Memory) (launch.Memory, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := launch.ReadMemory(ctx, p.main.Pid(), p.main.MetricsURL)
		if err != nil || m.Goroutines <= before.Goroutines || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// raceReports lists the data races the race-built processes reported in their logs.
func (p *platform) raceReports() ([]string, error) {
	entries, err := os.ReadDir(p.logDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(p.logDir, e.Name()))
		if err != nil {
			return nil, err
		}
		if n := strings.Count(string(b), "WARNING: DATA RACE"); n > 0 {
			out = append(out, fmt.Sprintf("%s: %d data race report(s)", e.Name(), n))
		}
	}
	return out, nil
}

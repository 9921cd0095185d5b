package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// benchEnv is the running platform and its database.
type benchEnv struct {
	bin      string
	dbURL    string
	dbName   string
	adminURL string
	env      []string
	httpURL  string
	grpcAddr string
	key      string
	// tokens sign the bench's own gRPC calls with the platform's service keys.
	tokens   *svcauth.Issuer
	serve    *exec.Cmd
	duration time.Duration
	clients  int
	cleanups []func()
}

func (e *benchEnv) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

func adminURL() string {
	if u := os.Getenv("NEXUSRAG_BENCH_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// setup creates a database, migrates it with the built binary, creates a key and starts
// `nexusrag serve` with its logs discarded (the default log level still formats them).
func setup(ctx context.Context) (*benchEnv, error) {
	e := &benchEnv{bin: "bin/nexusrag", adminURL: adminURL()}
	if _, err := os.Stat(e.bin); err != nil {
		return nil, fmt.Errorf("%s not found: run `make bench` (it builds first)", e.bin)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	e.dbName = "nexusrag_bench_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, e.adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w (run `make deps`)", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+e.dbName); err != nil {
		_ = admin.Close(ctx)
		return nil, err
	}
	_ = admin.Close(ctx)
	e.cleanups = append(e.cleanups, func() {
		c, err := pgx.Connect(context.Background(), e.adminURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+e.dbName+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	u, _ := url.Parse(e.adminURL)
	u.Path = "/" + e.dbName
	e.dbURL = u.String()
	keysFile, err := writeServiceKeys(e)
	if err != nil {
		e.close()
		return nil, err
	}
	e.env = append(os.Environ(), "DATABASE_URL="+e.dbURL, "HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "METRICS_ADDR=127.0.0.1:0",
		"SERVICE_AUTH_KEYS_FILE="+keysFile,
		"REDIS_KEY_PREFIX=nexusrag-bench:"+hex.EncodeToString(b)+":", "LOG_LEVEL=info", "LOG_FORMAT=json",
		"AUDIT_ACCESS_SUCCESS_INTERVAL=60s")
	// Rate limiting stays on, since its Redis check is part of every request's cost, with
	// buckets no benchmark empties.
	for _, class := range []string{"RUN", "MUTATION", "READ", "OPS"} {
		e.env = append(e.env, "RL_"+class+"_KEY=1000000/1000000", "RL_"+class+"_TENANT=1000000/1000000")
	}
	if out, err := e.command("migrate").CombinedOutput(); err != nil {
		e.close()
		return nil, fmt.Errorf("migrate: %v: %s", err, out)
	}
	out, err := e.command("apikey", "create", "--tenant", "bench", "--role", "reader", "--name", "bench", "--output", "json").Output()
	if err != nil {
		e.close()
		return nil, fmt.Errorf("apikey create: %w", err)
	}
	var k map[string]string
	if err := json.Unmarshal(out, &k); err != nil {
		e.close()
		return nil, err
	}
	e.key = k["api_key"]
	if err := e.startServe(ctx); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

// setting is an environment variable as the platform's processes see it (the last value
// of a repeated key wins), or def when it is unset.
func (e *benchEnv) setting(key, def string) string {
	for _, kv := range slices.Backward(e.env) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return def
}

func (e *benchEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	return cmd
}

func (e *benchEnv) startServe(ctx context.Context) error {
	p, stop, err := e.serveWith()
	if err != nil {
		return err
	}
	e.cleanups = append(e.cleanups, stop)
	e.serve, e.httpURL, e.grpcAddr = p.cmd, p.httpURL, p.grpcAddr
	return nil
}

// serveProcess is one running `nexusrag serve`.
type serveProcess struct {
	cmd        *exec.Cmd
	httpURL    string
	grpcAddr   string
	metricsURL string
}

// serveWith starts another `nexusrag serve` on the bench database with extra environment
// (KEY=value, overriding the bench's), for a suite that needs its own settings; stop
// interrupts it and waits.
func (e *benchEnv) serveWith(extra ...string) (*serveProcess, func(), error) {
	cmd := e.command("serve")
	cmd.Env = append(slices.Clip(e.env), extra...) // the last value of a repeated key wins
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	rec, err := readyRecord(stdout, "nexusrag ready")
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("nexusrag serve: %w", err)
	}
	httpAddr, _ := rec["http"].(string)
	grpcAddr, _ := rec["grpc"].(string)
	metricsAddr, _ := rec["metrics"].(string)
	return &serveProcess{cmd: cmd, httpURL: "http://" + httpAddr, grpcAddr: grpcAddr, metricsURL: "http://" + metricsAddr}, stop, nil
}

// writeServiceKeys makes the service keys the platform and the bench's own gRPC calls
// share (a split platform needs them; the bench signs its Retrieve calls with them).
func writeServiceKeys(e *benchEnv) (string, error) {
	dir, err := os.MkdirTemp("", "nexusrag-bench-keys-")
	if err != nil {
		return "", err
	}
	e.cleanups = append(e.cleanups, func() { _ = os.RemoveAll(dir) })
	secret := svcauth.NewSecret()
	path := dir + "/service.keys"
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	keys, err := svcauth.FromSecrets([]string{secret})
	if err != nil {
		return "", err
	}
	e.tokens = svcauth.NewIssuer(keys, "bench", time.Minute)
	return path, nil
}

// readyAddr reads JSON log lines until the one whose msg is want and returns its field.
func readyAddr(r io.Reader, want, field string) (string, error) {
	rec, err := readyRecord(r, want)
	if err != nil {
		return "", err
	}
	addr, _ := rec[field].(string)
	return strings.TrimSpace(addr), nil
}

// readyRecord reads JSON log lines until the one whose msg is want, returns it, and keeps
// draining the rest so the process never blocks on a full pipe.
func readyRecord(r io.Reader, want string) (map[string]any, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == want {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return rec, nil
		}
	}
	return nil, errors.New("exited before it was ready")
}

package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/logging/logtest"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// The end-to-end tests start the real binary, built once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nexusrag-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "nexusrag")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// platform is one running `nexusrag serve` process.
type platform struct {
	t       *testing.T
	env     []string
	cmd     *exec.Cmd
	HTTP    string // http://127.0.0.1:port, when the gateway runs
	GRPC    string // 127.0.0.1:port
	Metrics string // http://127.0.0.1:port
	logs    *logtest.Buffer
	exited  chan error
	pool    *pgxpool.Pool
	dbURL   string
	stopped bool
}

// The service keys of every platform the tests start: the tests sign their own calls
// to internal methods with them, as a service would.
var (
	keysOnce   sync.Once
	keysFile   string
	testTokens *svcauth.Issuer
)

func serviceKeys(t *testing.T) (file string, tokens *svcauth.Issuer) {
	t.Helper()
	keysOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nexusrag-e2e-keys-")
		if err != nil {
			panic(err)
		}
		secret := svcauth.NewSecret()
		keysFile = filepath.Join(dir, "service.keys")
		if err := os.WriteFile(keysFile, []byte(secret+"\n"), 0o600); err != nil {
			panic(err)
		}
		keys, err := svcauth.FromSecrets([]string{secret})
		if err != nil {
			panic(err)
		}
		testTokens = svcauth.NewIssuer(keys, "e2e-test", time.Minute)
	})
	return keysFile, testTokens
}

// env builds a process environment on a fresh database and Redis prefix.
func newEnv(t *testing.T, extra ...string) (env []string, dbURL string) {
	t.Helper()
	dbURL = pgtest.NewDatabase(t)
	_, prefix := redistest.New(t)
	keys, _ := serviceKeys(t)
	env = append(os.Environ(),
		"DATABASE_URL="+dbURL, "REDIS_URL="+redistest.URL(), "REDIS_KEY_PREFIX="+prefix, "SERVICE_AUTH_KEYS_FILE="+keys,
		"HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "METRICS_ADDR=127.0.0.1:0", "LOG_LEVEL=info", "LOG_FORMAT=json",
		// The race-built binary would sleep a second before each exit otherwise.
		"GORACE=atexit_sleep_ms=0",
		"AUTH_KEY_SYNC_INTERVAL=200ms", "SHUTDOWN_TIMEOUT=10s", "OTEL_TRACES_EXPORTER=none",
		// Tests poll fast; the rate limiter has tests of its own (RL_ENABLED=true there).
		"RL_ENABLED=false",
		// Every feature, so that tests of other things need no plan; plan tests set their own.
		"DEFAULT_PLAN_ID=enterprise",
		// No cloud here: cloud SDKs must find no credentials and never probe metadata servers.
		"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_PROFILE=",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials", "AWS_CONFIG_FILE=/nonexistent/aws-config",
		"GOOGLE_APPLICATION_CREDENTIALS=/nonexistent/gcp-credentials.json",
		// Backup sets of the test's own (never var/backups beside the package).
		"BACKUP_LOCAL_DIR="+t.TempDir())
	return append(env, extra...), dbURL
}

// run executes a CLI subcommand and returns its standard output.
func run(t *testing.T, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("nexusrag %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// startPlatform migrates a fresh database and starts `nexusrag serve args...`.
func startPlatform(t *testing.T, extraEnv []string, args ...string) *platform {
	t.Helper()
	env, dbURL := newEnv(t, extraEnv...)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	return startWithEnv(t, env, dbURL, args...)
}

func startWithEnv(t *testing.T, env []string, dbURL string, args ...string) *platform {
	t.Helper()
	p := &platform{t: t, env: env, logs: &logtest.Buffer{}, exited: make(chan error, 1), dbURL: dbURL}
	p.cmd = exec.Command(binary(t), append([]string{"serve"}, args...)...)
	p.cmd.Env = env
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.logs
	require.NoError(t, p.cmd.Start())
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.logs.Write(append(append([]byte{}, line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == "nexusrag ready" {
				ready <- rec
			}
		}
	}()
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("platform logs:\n%s", p.logs.String())
		}
	})
	select {
	case rec := <-ready:
		if addr, ok := rec["http"].(string); ok {
			p.HTTP = "http://" + addr
		}
		p.GRPC = rec["grpc"].(string)
		p.Metrics = "http://" + rec["metrics"].(string)
	case err := <-p.exited:
		t.Fatalf("nexusrag serve exited before ready: %v\n%s", err, p.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("nexusrag serve not ready after 60s\n%s", p.logs.String())
	}
	return p
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *platform) Stop() error {
	if p.stopped {
		return nil
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("did not stop within 30s after SIGTERM")
	}
}

// DB opens a pool on the platform's database (for assertions only).
func (p *platform) DB() *pgxpool.Pool {
	if p.pool == nil {
		pool, err := pgstore.Connect(context.Background(), p.dbURL, pgstore.Options{})
		require.NoError(p.t, err)
		p.t.Cleanup(pool.Close)
		p.pool = pool
	}
	return p.pool
}

// createKey makes a key with the CLI and returns (key id, plaintext).
func (p *platform) createKey(tenant, role string) (string, string) {
	p.t.Helper()
	out, err := run(p.t, p.env, "", "apikey", "create", "--tenant", tenant, "--role", role, "--name", "e2e-"+role, "--output", "json")
	require.NoError(p.t, err)
	var k map[string]string
	require.NoError(p.t, json.Unmarshal([]byte(out), &k))
	return k["key_id"], k["api_key"]
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r response) errorCode() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r response) data() map[string]any {
	d, _ := r.JSON["data"].(map[string]any)
	return d
}

// send sends a request with a JSON body (none when body is ""); key "" sends no
// Authorization header; headers are name, value pairs. The caller closes the body.
func (p *platform) send(method, path, key, body string, headers ...string) *http.Response {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.HTTP+path, rd)
	require.NoError(p.t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err)
	return res
}

// do sends a request and reads the whole answer.
func (p *platform) do(method, path, key, body string, headers ...string) response {
	p.t.Helper()
	res := p.send(method, path, key, body, headers...)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(p.t, err)
	out := response{Status: res.StatusCode, Header: res.Header, Body: b}
	_ = json.Unmarshal(b, &out.JSON)
	return out
}

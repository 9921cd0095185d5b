// Package launch starts the built nexusrag binary on a database of its own, for the
// programs that put load on it (bench, soak): the database, the service keys the
// processes share, `nexusrag serve` processes and the addresses they report, a private
// redis-server that can be restarted, an API client, and a process's memory figures.
package launch

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
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// Options says what Setup prepares.
type Options struct {
	// Bin is the built binary (bin/nexusrag by default).
	Bin string
	// AdminURL is a Postgres URL Setup may create and drop databases with.
	AdminURL string
	// Name prefixes the database's name, the Redis key prefix and the temporary files.
	Name string
	// Env is added to the processes' environment after the defaults (the last value of a
	// repeated key wins).
	Env []string
}

// Env is a migrated database with the environment of the processes that run on it.
type Env struct {
	Bin      string
	DBURL    string
	DBName   string
	AdminURL string
	// Dir holds the service keys and whatever else the caller keeps for the run.
	Dir string
	// Vars is the processes' environment.
	Vars []string
	// Tokens sign the caller's own gRPC calls with the platform's service keys.
	Tokens   *svcauth.Issuer
	cleanups []func()
}

// Setup creates a database (dropped by Close), writes service keys and migrates.
func Setup(ctx context.Context, o Options) (*Env, error) {
	if o.Bin == "" {
		o.Bin = "bin/nexusrag"
	}
	if _, err := os.Stat(o.Bin); err != nil {
		return nil, fmt.Errorf("%s not found: build it first (make build)", o.Bin)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	e := &Env{Bin: o.Bin, AdminURL: o.AdminURL, DBName: "nexusrag_" + o.Name + "_" + id}
	admin, err := pgx.Connect(ctx, e.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w (run `make deps`)", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+e.DBName)
	_ = admin.Close(ctx)
	if err != nil {
		return nil, err
	}
	e.OnClose(func() {
		c, err := pgx.Connect(context.Background(), e.AdminURL)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+e.DBName+" WITH (FORCE)")
			_ = c.Close(context.Background())
		}
	})
	u, err := url.Parse(e.AdminURL)
	if err != nil {
		e.Close()
		return nil, err
	}
	u.Path = "/" + e.DBName
	e.DBURL = u.String()
	if e.Dir, err = os.MkdirTemp("", "nexusrag-"+o.Name+"-"); err != nil {
		e.Close()
		return nil, err
	}
	e.OnClose(func() { _ = os.RemoveAll(e.Dir) })
	keysFile, err := e.writeServiceKeys(o.Name)
	if err != nil {
		e.Close()
		return nil, err
	}
	e.Vars = append(os.Environ(), "DATABASE_URL="+e.DBURL, "HTTP_ADDR=127.0.0.1:0", "GRPC_ADDR=127.0.0.1:0", "METRICS_ADDR=127.0.0.1:0",
		"SERVICE_AUTH_KEYS_FILE="+keysFile, "REDIS_KEY_PREFIX=nexusrag-"+o.Name+":"+id+":", "LOG_LEVEL=info", "LOG_FORMAT=json",
		"GORACE=atexit_sleep_ms=0")
	e.Vars = append(e.Vars, o.Env...)
	if out, err := e.Command("migrate").CombinedOutput(); err != nil {
		e.Close()
		return nil, fmt.Errorf("migrate: %v: %s", err, out)
	}
	return e, nil
}

// OnClose runs f when the environment closes, before what was registered earlier.
func (e *Env) OnClose(f func()) { e.cleanups = append(e.cleanups, f) }

// Close undoes Setup and whatever was registered with OnClose, last first.
func (e *Env) Close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
}

// Setting is an environment variable as the processes see it (the last value of a
// repeated key wins), or def when it is unset.
func (e *Env) Setting(key, def string) string {
	for _, kv := range slices.Backward(e.Vars) {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return def
}

// Command is `nexusrag args...` in the environment.
func (e *Env) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(e.Bin, args...)
	cmd.Env = e.Vars
	return cmd
}

// CreateKey makes an API key with the CLI and returns its plaintext.
func (e *Env) CreateKey(tenant, role, name string) (string, error) {
	out, err := e.Command("apikey", "create", "--tenant", tenant, "--role", role, "--name", name, "--output", "json").Output()
	if err != nil {
		return "", fmt.Errorf("apikey create --tenant %s --role %s: %w", tenant, role, err)
	}
	var k struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &k); err != nil {
		return "", fmt.Errorf("apikey create --tenant %s --role %s: %w", tenant, role, err)
	}
	return k.APIKey, nil
}

// Unmetered gives tenant quotas no load run reaches (10^12 requests a day and a month),
// with the CLI, so that a benchmark or a soak measures the platform, not its 402s.
func (e *Env) Unmetered(tenant string) error {
	const most = "1000000000000"
	if out, err := e.Command("quota", "set", "--tenant", tenant, "--daily", most, "--monthly", most).CombinedOutput(); err != nil {
		return fmt.Errorf("quota set --tenant %s: %w: %s", tenant, err, out)
	}
	return nil
}

// writeServiceKeys makes the service keys the processes and the caller's own gRPC calls
// share (a split platform needs them; bench signs its Retrieve calls with them).
func (e *Env) writeServiceKeys(name string) (string, error) {
	secret := svcauth.NewSecret()
	path := filepath.Join(e.Dir, "service.keys")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	keys, err := svcauth.FromSecrets([]string{secret})
	if err != nil {
		return "", err
	}
	e.Tokens = svcauth.NewIssuer(keys, name, time.Minute)
	return path, nil
}

// Process is one running `nexusrag serve`.
type Process struct {
	Cmd        *exec.Cmd
	HTTPURL    string // http://host:port, when the process serves HTTP
	GRPCAddr   string
	MetricsURL string
	exited     chan error
}

// Serve starts `nexusrag serve args...` with extra environment (KEY=value, overriding
// the env's) and waits until it is ready. Its standard error and output go to logs (nil
// discards), which must take concurrent writes (an *os.File does).
func (e *Env) Serve(args []string, logs io.Writer, extra ...string) (*Process, error) {
	if logs == nil {
		logs = io.Discard
	}
	cmd := exec.Command(e.Bin, append([]string{"serve"}, args...)...)
	cmd.Env = append(slices.Clip(e.Vars), extra...)
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Cmd: cmd, exited: make(chan error, 1)}
	rec, err := ReadyRecord(stdout, "nexusrag ready", logs)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("nexusrag serve %s: %w", strings.Join(args, " "), err)
	}
	go func() { p.exited <- cmd.Wait() }()
	if addr, ok := rec["http"].(string); ok {
		p.HTTPURL = "http://" + addr
	}
	p.GRPCAddr, _ = rec["grpc"].(string)
	if addr, ok := rec["metrics"].(string); ok {
		p.MetricsURL = "http://" + addr
	}
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Stop interrupts the process and waits for it to exit (killing it after timeout).
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		return err
	case <-time.After(timeout):
		_ = p.Cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("did not stop within %s of SIGTERM", timeout)
	}
}

// Kill ends the process at once, as a crash or an OOM kill would.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.exited
}

// ReadyAddr reads JSON log lines until the one whose msg is want and returns its field.
func ReadyAddr(r io.Reader, want, field string) (string, error) {
	rec, err := ReadyRecord(r, want, io.Discard)
	if err != nil {
		return "", err
	}
	addr, _ := rec[field].(string)
	return strings.TrimSpace(addr), nil
}

// ReadyRecord reads JSON log lines until the one whose msg is want, returns it, and
// keeps copying the rest to rest so the process never blocks on a full pipe.
func ReadyRecord(r io.Reader, want string, rest io.Writer) (map[string]any, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["msg"] == want {
			go func() { _, _ = io.Copy(rest, br) }()
			return rec, nil
		}
		_, _ = rest.Write(line)
		if err != nil {
			return nil, errors.New("exited before it was ready")
		}
	}
}

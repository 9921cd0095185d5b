package launch

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server of the caller's own, without persistence, on a free port of
// loopback, which the caller may kill and start again (fault tests, the soak).
type Redis struct {
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server and waits until it answers.
func StartRedis() (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server is needed (make deps): %w", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Redis{port: lis.Addr().(*net.TCPAddr).Port}
	_ = lis.Close()
	return r, r.Start()
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start starts the server (again, on the same port) and waits until it answers.
func (r *Redis) Start() error {
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.Kill()
			return fmt.Errorf("redis-server on %s did not answer within 10s", r.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Kill ends the server at once, as a crash would; its data is gone.
func (r *Redis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Package redistest gives each test its own key prefix on the shared local Redis and
// deletes the keys under it afterwards (never FLUSHALL: other packages share the server).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nexusrag/nexusrag/internal/launch"
)

// URL is the server tests use; NEXUSRAG_TEST_REDIS_URL overrides it.
func URL() string {
	if u := os.Getenv("NEXUSRAG_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// New returns a client and a unique key prefix; keys under the prefix are removed on cleanup.
func New(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	opts, err := redis.ParseURL(URL())
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	rdb := redis.NewClient(opts)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("redistest: ping %s: %v (is Redis running? make deps)", URL(), err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "nexusrag-test:" + hex.EncodeToString(b) + ":"
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// Server is a redis-server of the test's own on a free port, which the test may stop and
// start again (fault tests). It is stopped on cleanup.
type Server struct {
	tb testing.TB
	*launch.Redis
}

// StartServer starts a private redis-server without persistence.
func StartServer(tb testing.TB) *Server {
	tb.Helper()
	r, err := launch.StartRedis()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{tb: tb, Redis: r}
	tb.Cleanup(s.Stop)
	return s
}

// Start starts the server again and waits until it answers.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.Redis.Start(); err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
}

// Stop kills the server (as a crash would).
func (s *Server) Stop() { s.Kill() }

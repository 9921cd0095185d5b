package main_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// cluster is a PostgreSQL 15 cluster of the test's own (pg_createcluster), dropped after.
type cluster struct {
	name string
	port int
}

func (c cluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

func sh(t *testing.T, name string, args ...string) {
	t.Helper()
	shIn(t, "", nil, name, args...)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// regionPair makes a primary cluster (replication allowed from loopback) and a streaming
// standby of it made with pg_basebackup, as two regions' databases.
func regionPair(t *testing.T) (primary, standby cluster) {
	t.Helper()
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		t.Skip("pg_createcluster (postgresql-common) is not installed: make deps installs it")
	}
	if os.Geteuid() != 0 {
		t.Skip("making PostgreSQL clusters (pg_createcluster, pg_basebackup as postgres) needs root, as on the project's machines and CI")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := hex.EncodeToString(b)
	primary, standby = cluster{"nxa_" + suffix, freePort(t)}, cluster{"nxb_" + suffix, freePort(t)}
	t.Cleanup(func() {
		for _, c := range []cluster{standby, primary} {
			_ = exec.Command("pg_dropcluster", "15", c.name, "--stop").Run()
		}
	})
	sh(t, "pg_createcluster", "15", primary.name, "--port", fmt.Sprint(primary.port), "--start", "--", "--auth=trust")
	hba, err := os.OpenFile(filepath.Join("/etc/postgresql/15", primary.name, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = hba.WriteString("host replication all 127.0.0.1/32 trust\n")
	require.NoError(t, err)
	require.NoError(t, hba.Close())
	sh(t, "pg_ctlcluster", "15", primary.name, "reload")
	conn, err := pgx.Connect(context.Background(), primary.url("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), "CREATE DATABASE nexusrag")
	require.NoError(t, err)
	conn.Close(context.Background())

	sh(t, "pg_createcluster", "15", standby.name, "--port", fmt.Sprint(standby.port), "--", "--auth=trust")
	data := filepath.Join("/var/lib/postgresql/15", standby.name)
	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(data, e.Name())))
	}
	return primary, standby
}

// startStandby copies the primary (after its migrations) into the standby and starts it.
func startStandby(t *testing.T, primary, standby cluster) {
	t.Helper()
	sh(t, "runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1", "-p", fmt.Sprint(primary.port), "-U", "postgres",
		"-D", filepath.Join("/var/lib/postgresql/15", standby.name), "-R", "-X", "stream", "--checkpoint=fast")
	sh(t, "pg_ctlcluster", "15", standby.name, "start")
}

// TestTwoRegionFailover: region a (a primary cluster) and region b (a streaming standby of
// it), each with its own nexusrag process. b refuses writes and reports its real lag; a
// promotion of b with a one-time token freezes a, promotes b's database, verifies, and then
// b takes writes while a refuses them. Wrong-region, reused and expired tokens and a second
// concurrent promotion are refused.
func TestTwoRegionFailover(t *testing.T) {
	t.Parallel()
	started := time.Now()
	primary, standby := regionPair(t)
	t.Logf("clusters made in %s", time.Since(started).Round(time.Millisecond))
	rdb, _ := redistest.New(t)
	envA, _ := newEnv(t, "DATABASE_URL="+primary.url("nexusrag"), "REGION_ID=a", "REGION_ROLE=primary", "PLATFORM_ADMIN_TENANTS=t-op",
		"WRITE_GATE_SYNC_INTERVAL=100ms")
	_, err := run(t, envA, "", "migrate")
	require.NoError(t, err)
	t.Logf("primary migrated at %s", time.Since(started).Round(time.Millisecond))
	startStandby(t, primary, standby)
	t.Logf("standby streaming at %s", time.Since(started).Round(time.Millisecond))
	a := startWithEnv(t, envA, primary.url("nexusrag"))
	envB, _ := newEnv(t, "DATABASE_URL="+standby.url("nexusrag"), "REGION_ID=b", "REGION_ROLE=secondary", "PLATFORM_ADMIN_TENANTS=t-op",
		"WRITE_GATE_SYNC_INTERVAL=100ms", "FAILOVER_ENABLED=true", `PEER_REGIONS_JSON=[{"region_id": "a", "grpc_addr": "`+a.GRPC+`"}]`)
	b := startWithEnv(t, envB, standby.url("nexusrag"))
	prefixB := ""
	for _, kv := range envB {
		if v, ok := strings.CutPrefix(kv, "REDIS_KEY_PREFIX="); ok {
			prefixB = v
		}
	}
	_, op := a.createKey("t-op", "admin") // written in a, replicated to b
	write := func(p *platform) response {
		return p.do(http.MethodPatch, "/v1/corpora/c1", op, `{"allow_missing": true}`)
	}
	require.Eventually(t, func() bool { return b.do(http.MethodGet, "/v1/ops/failover/status", op, "").Status == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "the key reaches b by replication")

	require.Equal(t, http.StatusOK, write(a).Status)
	var r response
	require.Eventually(t, func() bool { r = write(b); return r.Status == http.StatusServiceUnavailable }, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "WRITES_FROZEN", r.errorCode())
	require.Contains(t, r.JSON["error"].(map[string]any)["message"], "standby")

	r = b.do(http.MethodGet, "/v1/ops/failover/readiness", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, true, r.data()["database_in_recovery"])
	require.Equal(t, true, r.data()["streaming"])
	require.Less(t, r.data()["lag_seconds"].(float64), 5.0)
	require.Equal(t, true, r.data()["ready_to_promote"], "%v", r.data()["reasons"])
	t.Logf("region b's replay lag, read from PostgreSQL: %.3f s", r.data()["lag_seconds"].(float64))
	r = a.do(http.MethodGet, "/v1/ops/failover/readiness", op, "")
	require.Len(t, r.data()["standbys"], 1)
	require.Equal(t, "streaming", r.data()["standbys"].([]any)[0].(map[string]any)["state"])

	token := func() string {
		r := b.do(http.MethodPost, "/v1/ops/failover/request-token", op, `{"purpose": "promote", "reason": "region a lost"}`)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		return r.data()["token"].(string)
	}
	promote := func(tok, target string) response {
		return b.do(http.MethodPost, "/v1/ops/failover/promote", op, fmt.Sprintf(`{"target_region": %q, "token": %q, "reason": "region a lost"}`, target, tok))
	}
	require.Equal(t, "FAILOVER_WRONG_REGION", promote(token(), "a").errorCode())
	expired := token()
	sum := sha256.Sum256([]byte(expired))
	require.NoError(t, rdb.PExpire(context.Background(), prefixB+"failover:token:"+hex.EncodeToString(sum[:]), time.Millisecond).Err())
	require.Eventually(t, func() bool {
		n, _ := rdb.Exists(context.Background(), prefixB+"failover:token:"+hex.EncodeToString(sum[:])).Result()
		return n == 0
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "FAILOVER_TOKEN_INVALID", promote(expired, "b").errorCode(), "an expired token")

	// Two promotions at once: one completes, the other is refused.
	tokens := []string{token(), token()}
	results := make([]response, 2)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = promote(tokens[i], "b") }()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, res := range results {
		switch res.Status {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
			refused++
			require.Contains(t, []string{"FAILOVER_IN_PROGRESS", "FAILOVER_COOLDOWN"}, res.errorCode())
		default:
			t.Fatalf("promotion answered %d: %s", res.Status, res.Body)
		}
	}
	require.Equal(t, [2]int{1, 1}, [2]int{ok, refused})
	t.Logf("promoted at %s", time.Since(started).Round(time.Millisecond))
	require.Equal(t, "FAILOVER_TOKEN_INVALID", promote(tokens[0], "b").errorCode(), "a used token")

	r = b.do(http.MethodGet, "/v1/ops/failover/status", op, "")
	require.Equal(t, "primary", r.data()["role"])
	require.Equal(t, "completed", r.data()["state"])
	require.Equal(t, false, r.data()["database_in_recovery"])
	require.Len(t, r.data()["recent_transitions"], 5, "promote_requested, writes_frozen, precheck_passed, promoted, verified")
	require.Eventually(t, func() bool { return write(b).Status == http.StatusOK }, 5*time.Second, 20*time.Millisecond, "b takes writes")
	require.Eventually(t, func() bool { r = write(a); return r.Status == http.StatusServiceUnavailable }, 5*time.Second, 20*time.Millisecond, "a refuses them")
	require.Contains(t, r.JSON["error"].(map[string]any)["message"], "region b is being promoted")
	require.Equal(t, "secondary", a.do(http.MethodGet, "/v1/ops/failover/status", op, "").data()["role"])
}

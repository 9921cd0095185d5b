package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/services/gateway"
)

// gatewayAuthSuite: an authenticated GET through the whole gateway (auth, envelope,
// gRPC hop to AuthService, logs, metrics, audit sampling) beside a bare net/http server
// doing only the same key lookup (the gateway's KeyCache) and writing the same fields.
func gatewayAuthSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	bareURL, stop, err := startBare(ctx, env)
	if err != nil {
		return nil, err
	}
	defer stop()
	gw, err := load(ctx, env.httpURL+"/v1/auth/whoami", env.key, env.clients, env.duration)
	if err != nil {
		return nil, err
	}
	bare, err := load(ctx, bareURL+"/whoami", env.key, env.clients, env.duration)
	if err != nil {
		return nil, err
	}
	note := func(r result) string {
		if r.errors > 0 {
			return fmt.Sprintf("%d errors", r.errors)
		}
		return fmt.Sprintf("%d requests", len(r.latencies))
	}
	return []row{
		{name: "gateway: GET /v1/auth/whoami (HTTP, auth, gRPC hop)", p50: ms(gw.quantile(.5)), p99: ms(gw.quantile(.99)), rate: fmt.Sprintf("%.0f req/s", gw.rate()), note: note(gw)},
		{name: "baseline: bare net/http, same key lookup", p50: ms(bare.quantile(.5)), p99: ms(bare.quantile(.99)), rate: fmt.Sprintf("%.0f req/s", bare.rate()), note: note(bare)},
		{name: "ratio gateway / baseline", p50: ratio(float64(gw.quantile(.5)), float64(bare.quantile(.5))),
			p99: ratio(float64(gw.quantile(.99)), float64(bare.quantile(.99))), rate: ratio(gw.rate(), bare.rate()), note: "latency: lower is better; throughput: higher is better"},
	}, nil
}

// startBare runs the baseline in its own process (this program re-executed), so that
// like the gateway it does not share a process with the load generator.
func startBare(ctx context.Context, env *benchEnv) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-bare-server", env.dbURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	addr, err := readyAddr(stdout, "bare ready", "http")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("bare server: %w", err)
	}
	return "http://" + addr, stop, nil
}

func serveBare(ctx context.Context, dbURL string) error {
	pool, err := pgstore.Connect(ctx, dbURL, pgstore.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()
	keys := gateway.NewKeyCache(gateway.NewStore(pool), logging.Discard(), time.Second, 5*time.Second)
	if err := keys.Sync(ctx); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		p, err := keys.Authenticate(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"tenant_id": p.TenantID, "key_id": p.KeyID})
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf(`{"msg":"bare ready","http":%q}`+"\n", lis.Addr().String())
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(lis); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

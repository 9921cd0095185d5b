// Command bench is `make bench`: it starts the built nexusrag binary against the local
// Postgres and Redis (a fresh database, dropped afterwards), runs each benchmark beside
// its baseline in the same run, and prints a table. Figures only: it never fails a build
// on a slow number.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// row is one line of the table.
type row struct {
	name, p50, p99, rate, note string
}

// suite is a group of rows produced against one running platform.
type suite func(ctx context.Context, env *benchEnv) ([]row, error)

func main() {
	bare := flag.String("bare-server", "", "internal: serve the bare net/http baseline on this database URL")
	bareRedis := flag.String("bare-redis", "", "internal: the Redis URL of the bare baseline")
	only := flag.String("suites", "", "comma-separated suites to run (gateway, ratelimit, retrieval, ingest, run, policy, backup); empty runs all")
	duration := flag.Duration("duration", 5*time.Second, "measuring time per benchmark")
	clients := flag.Int("clients", 16, "concurrent clients")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *bare != "" {
		if err := serveBare(ctx, *bare, *bareRedis); err != nil {
			fmt.Fprintln(os.Stderr, "bare server:", err)
			os.Exit(1)
		}
		return
	}
	if err := runAll(ctx, *duration, *clients, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runAll(ctx context.Context, d time.Duration, clients int, only string) error {
	all := []struct {
		name string
		run  suite
	}{{"gateway", gatewayAuthSuite}, {"ratelimit", rateLimitSuite}, {"retrieval", retrievalSuite}, {"ingest", ingestSuite}, {"run", runSuite}, {"policy", policySuite}, {"backup", backupSuite}}
	var suites []suite
	for _, s := range all {
		if only == "" || slices.Contains(strings.Split(only, ","), s.name) {
			suites = append(suites, s.run)
		}
	}
	if len(suites) == 0 {
		return fmt.Errorf("-suites %q names none of gateway, ratelimit, retrieval, ingest, run, policy, backup", only)
	}
	env, err := setup(ctx)
	if err != nil {
		return err
	}
	defer env.Close()
	env.duration, env.clients = d, clients
	var rows []row
	for _, s := range suites {
		r, err := s(ctx, env)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	printTable(env, rows)
	return nil
}

func printTable(env *benchEnv, rows []row) {
	host, _ := os.Hostname()
	fmt.Printf("\nNexusRAG benchmarks: %s, %d clients, %s per benchmark, host %s\n\n", time.Now().UTC().Format(time.RFC3339), env.clients, env.duration, host)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCHMARK\tP50\tP99\tTHROUGHPUT\tNOTE")
	fmt.Fprintln(tw, strings.Repeat("-", 9)+"\t---\t---\t----------\t----")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, r.p50, r.p99, r.rate, r.note)
	}
	_ = tw.Flush()
	fmt.Println()
}

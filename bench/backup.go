package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// backupSuite: `nexusrag backup create --type all` (encrypted and signed) and a restore of
// it into a fresh database, for the demo database and again with a 100k-chunk corpus
// added; the rows carry the wall time, the set's size and the peak memory of the binary
// and of pg_dump or pg_restore.
func backupSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	keys, err := env.Command("backup", "keygen").Output()
	if err != nil {
		return nil, fmt.Errorf("backup keygen: %w", err)
	}
	dir, err := os.MkdirTemp("", "nexusrag-bench-backups-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	vars := append(append([]string{}, env.Vars...), strings.Fields(string(keys))...)
	vars = append(vars, "BACKUP_LOCAL_DIR="+dir, "BACKUP_ENCRYPTION_ENABLED=true", "BACKUP_SIGNING_ENABLED=true", "RESTORE_REQUIRE_SIGNATURE=true")
	cli := func(args ...string) (string, time.Duration, error) {
		cmd := env.Command(args...)
		cmd.Env = vars
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", 0, fmt.Errorf("nexusrag %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out), time.Since(start), nil
	}
	if _, _, err := cli("seed-demo"); err != nil {
		return nil, err
	}
	var rows []row
	measure := func(label string) error {
		out, took, err := cli("backup", "create", "--type", "all")
		if err != nil {
			return err
		}
		m := regexp.MustCompile(`backup (\S+) in (\S+): \d+ files, (\d+) bytes`).FindStringSubmatch(out)
		if m == nil {
			return fmt.Errorf("backup create said: %s", out)
		}
		var size int64
		fmt.Sscan(m[3], &size)
		rows = append(rows, row{name: "backup create --type all, " + label, p50: fmt.Sprintf("%.1f s", took.Seconds()),
			rate: fmt.Sprintf("%.1f MiB", float64(size)/(1<<20)), note: peak(out) + "; encrypted, signed"})
		target, drop, err := scratchDatabase(ctx, env.DBURL, "restore")
		if err != nil {
			return err
		}
		defer drop()
		out, took, err = cli("backup", "restore", "--manifest", m[2]+"/manifest.json", "--target-db", target)
		if err != nil {
			return err
		}
		tables := regexp.MustCompile(`(\d+) tables match`).FindStringSubmatch(out)
		if tables == nil {
			return fmt.Errorf("backup restore said: %s", out)
		}
		rows = append(rows, row{name: "backup restore into a fresh database, " + label, p50: fmt.Sprintf("%.1f s", took.Seconds()),
			note: peak(out) + "; " + tables[1] + " tables checked against the snapshot"})
		return nil
	}
	if err := measure("demo database"); err != nil {
		return nil, err
	}
	if err := ensureSyntheticCorpus(ctx, env.DBURL); err != nil {
		return nil, err
	}
	if err := measure("with 100k chunks"); err != nil {
		return nil, err
	}
	return rows, nil
}

func peak(out string) string {
	if m := regexp.MustCompile(`peak memory: nexusrag ([\d.]+) MiB, largest child \(\S+\) ([\d.]+) MiB`).FindStringSubmatch(out); m != nil {
		return "peak RSS: nexusrag " + m[1] + " MiB, pg tool " + m[2] + " MiB"
	}
	return "peak RSS: not reported"
}

// ensureSyntheticCorpus loads the 100k-chunk corpus unless the retrieval suite did.
func ensureSyntheticCorpus(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	var n int64
	err = conn.QueryRow(ctx, `SELECT count(*) FROM retrieval.chunks WHERE corpus_id = 'bench-100k'`).Scan(&n)
	conn.Close(ctx)
	if err != nil || n > 0 {
		return err
	}
	return loadSyntheticCorpus(ctx, dbURL)
}

// scratchDatabase names a database beside dbURL's (created by the restore) and drops it.
func scratchDatabase(ctx context.Context, dbURL, suffix string) (string, func(), error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", nil, err
	}
	name := strings.TrimPrefix(u.Path, "/") + "_" + suffix
	admin := *u
	admin.Path = "/postgres"
	u.Path = "/" + name
	drop := func() {
		if c, err := pgx.Connect(context.WithoutCancel(ctx), admin.String()); err == nil {
			_, _ = c.Exec(context.WithoutCancel(ctx), `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
			c.Close(context.WithoutCancel(ctx))
		}
	}
	drop()
	return u.String(), drop, nil
}

package failover_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/services/failover"
	"github.com/nexusrag/nexusrag/services/governance"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/run"
)

// source is a database with a few services' schemas and rows, vectors included.
func source(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	pool := pgtest.NewPool(t, governance.Migrations(), retrieval.Migrations(), run.Migrations(), failover.Migrations())
	pgtest.MustExec(t, pool, `INSERT INTO run.sessions (tenant_id, session_id) SELECT 't1', 's' || g FROM generate_series(1, 50) g`)
	pgtest.MustExec(t, pool, `INSERT INTO run.messages (tenant_id, session_id, run_id, role, content)
		SELECT 't1', 's' || (g % 50 + 1), gen_random_uuid(), 'user', 'message ' || g || ' é ✓' FROM generate_series(1, 2000) g`)
	pgtest.MustExec(t, pool, `INSERT INTO governance.legal_holds (tenant_id, scope_type, scope_id, reason, created_by) VALUES ('t1', 'tenant', 't1', 'r', 'k')`)
	return pool, pool.Config().ConnString()
}

func stats(t *testing.T, dbURL string) map[string]string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string]string{}
	for _, tbl := range tables {
		var n int64
		var sum string
		require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)::text FROM `+tbl+` t`).Scan(&n, &sum))
		out[tbl] = fmt.Sprintf("%d rows, checksum %s", n, sum)
	}
	return out
}

func config(t *testing.T) failover.Config {
	return failover.Config{LocalDir: t.TempDir(), RetentionDays: 30, Schedule: "0 2 * * *", RPOSeconds: 3600, RTOSeconds: 3600}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x01
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o600))
	}
	return to
}

func TestBackupTamperRestore(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name             string
		encrypt, sign    bool
		encrypted, named string
	}{{name: "plain"}, {name: "encrypted and signed", encrypt: true, sign: true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, src := source(t)
			cfg := config(t)
			if tc.encrypt {
				cfg.EncryptionEnabled = true
				cfg.EncryptionKey, _ = failover.NewEncryptionKey()
			}
			if tc.sign {
				cfg.SigningEnabled, cfg.RequireSignature = true, true
				cfg.SigningKey, _ = failover.NewSigningKey()
			}
			b, err := failover.NewBackups(cfg, src)
			require.NoError(t, err)
			m, dir, err := b.Create(context.Background(), "all")
			require.NoError(t, err)
			require.Len(t, m.Files, 3)
			for _, f := range m.Files {
				require.Equal(t, tc.encrypt, strings.HasSuffix(f.Name, ".age"), f.Name)
				require.Len(t, f.SHA256, 64)
			}
			if tc.encrypt {
				raw, err := os.ReadFile(filepath.Join(dir, m.Files[0].Name))
				require.NoError(t, err)
				require.NotContains(t, string(raw), "message 1 é", "the dump is encrypted")
			}
			_, err = os.Stat(filepath.Join(dir, "manifest.sig"))
			require.Equal(t, tc.sign, err == nil)
			listed, err := b.List()
			require.NoError(t, err)
			require.Len(t, listed, 1)
			require.Equal(t, m.BackupID, listed[0].BackupID)

			// One flipped byte in any file is refused before anything is touched.
			for _, f := range m.Files {
				bad := copyDir(t, dir)
				flipByte(t, filepath.Join(bad, f.Name))
				_, err := b.Restore(context.Background(), failover.RestoreOptions{Manifest: filepath.Join(bad, "manifest.json"), TargetURL: pgtest.NewDatabase(t)})
				require.ErrorContains(t, err, "does not match the manifest", f.Name)
			}

			// A dry run checks everything and changes nothing.
			target := pgtest.NewDatabase(t)
			rep, err := b.Restore(context.Background(), failover.RestoreOptions{Manifest: filepath.Join(dir, "manifest.json"), TargetURL: target, DryRun: true})
			require.NoError(t, err)
			require.Empty(t, rep.Restored)
			require.Empty(t, stats(t, target))

			rep, err = b.Restore(context.Background(), failover.RestoreOptions{Manifest: filepath.Join(dir, "manifest.json"), TargetURL: target})
			require.NoError(t, err)
			require.Equal(t, []string{"db"}, rep.Restored)
			require.Positive(t, rep.Verified, "every table compared with the snapshot")
			require.Equal(t, stats(t, src), stats(t, target), "row counts and checksums match the source")
			require.Equal(t, "2000 rows", strings.Split(stats(t, target)["run.messages"], ",")[0])
			if tc.sign {
				require.NotEmpty(t, rep.SignedBy)
			}

			// The target now holds data: a second restore needs --allow-destructive.
			_, err = b.Restore(context.Background(), failover.RestoreOptions{Manifest: filepath.Join(dir, "manifest.json"), TargetURL: target})
			require.ErrorContains(t, err, "--allow-destructive")
			_, err = b.Restore(context.Background(), failover.RestoreOptions{Manifest: filepath.Join(dir, "manifest.json"), TargetURL: target, AllowDestructive: true})
			require.NoError(t, err)
			require.Equal(t, stats(t, src), stats(t, target))
		})
	}
}

func TestRestoreRefusesWrongKeysAndUnsignedSets(t *testing.T) {
	t.Parallel()
	_, src := source(t)
	cfg := config(t)
	cfg.EncryptionEnabled, cfg.SigningEnabled = true, true
	cfg.EncryptionKey, _ = failover.NewEncryptionKey()
	cfg.SigningKey, _ = failover.NewSigningKey()
	b, err := failover.NewBackups(cfg, src)
	require.NoError(t, err)
	m, dir, err := b.Create(context.Background(), "db")
	require.NoError(t, err)
	manifest := filepath.Join(dir, "manifest.json")

	other := cfg
	other.EncryptionKey, _ = failover.NewEncryptionKey()
	wrong, err := failover.NewBackups(other, src)
	require.NoError(t, err)
	_, _, err = wrong.Verify(failover.RestoreOptions{Manifest: manifest})
	require.ErrorContains(t, err, "wrong key")

	// Rotation: the old key second still decrypts.
	rotated := cfg
	rotated.EncryptionKey = other.EncryptionKey + "," + cfg.EncryptionKey
	rb, err := failover.NewBackups(rotated, src)
	require.NoError(t, err)
	_, _, err = rb.Verify(failover.RestoreOptions{Manifest: manifest})
	require.NoError(t, err)

	unknownSigner := cfg
	unknownSigner.SigningKey, _ = failover.NewSigningKey()
	us, err := failover.NewBackups(unknownSigner, src)
	require.NoError(t, err)
	_, _, err = us.Verify(failover.RestoreOptions{Manifest: manifest})
	require.ErrorContains(t, err, "not in BACKUP_SIGNING_KEY")

	// A changed manifest (a file's checksum swapped) fails its signature.
	bad := copyDir(t, dir)
	raw, err := os.ReadFile(filepath.Join(bad, "manifest.json"))
	require.NoError(t, err)
	var mm map[string]any
	require.NoError(t, json.Unmarshal(raw, &mm))
	mm["type"] = "all"
	raw, _ = json.Marshal(mm)
	require.NoError(t, os.WriteFile(filepath.Join(bad, "manifest.json"), raw, 0o600))
	_, _, err = b.Verify(failover.RestoreOptions{Manifest: filepath.Join(bad, "manifest.json")})
	require.ErrorContains(t, err, "does not verify")

	// Unsigned while signatures are required: refused.
	require.NoError(t, os.Remove(filepath.Join(bad, "manifest.sig")))
	cfg.RequireSignature = true
	strict, err := failover.NewBackups(cfg, src)
	require.NoError(t, err)
	_, _, err = strict.Verify(failover.RestoreOptions{Manifest: filepath.Join(bad, "manifest.json")})
	require.ErrorContains(t, err, "not signed")
	_, _, err = strict.Verify(failover.RestoreOptions{Manifest: manifest, Components: []string{"schema"}})
	require.ErrorContains(t, err, `component "schema" is not in backup `+m.BackupID)
}

func TestPruneKeepsHeldAndRecentSets(t *testing.T) {
	t.Parallel()
	_, src := source(t)
	cfg := config(t)
	cfg.RetentionDays = 1
	b, err := failover.NewBackups(cfg, src)
	require.NoError(t, err)
	var ids []string
	for range 3 {
		m, _, err := b.Create(context.Background(), "metadata")
		require.NoError(t, err)
		ids = append(ids, m.BackupID)
	}
	held := func(id string) (bool, error) { return id == ids[1], nil }
	deleted, kept, err := b.Prune(time.Now(), held)
	require.NoError(t, err)
	require.Empty(t, deleted, "none is older than a day")
	require.Empty(t, kept)
	deleted, kept, err = b.Prune(time.Now().Add(49*time.Hour), held)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{ids[0], ids[2]}, deleted)
	require.Equal(t, []string{ids[1]}, kept)
	listed, err := b.List()
	require.NoError(t, err)
	require.Len(t, listed, 1)
}

package main_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
)

// TestBackupsOverTheBinary: DR readiness before and after; the backup commands with
// encryption and signing on; a tampered set refused; a restore into a fresh database that
// matches; a drill through the maintenance route; a backup set under a legal hold.
func TestBackupsOverTheBinary(t *testing.T) {
	t.Parallel()
	keys, err := run(t, os.Environ(), "", "backup", "keygen")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^BACKUP_ENCRYPTION_KEY=AGE-SECRET-KEY-1\S+$`, keys)
	env, dbURL := newEnv(t, append(strings.Fields(keys), "PLATFORM_ADMIN_TENANTS=t-op", "BACKUP_ENABLED=true", "BACKUP_ENCRYPTION_ENABLED=true",
		"BACKUP_SIGNING_ENABLED=true", "RESTORE_REQUIRE_SIGNATURE=true")...)
	_, err = run(t, env, "", "migrate")
	require.NoError(t, err)
	p := startWithEnv(t, env, dbURL)
	_, op := p.createKey("t-op", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", op, `{"allow_missing": true}`).Status)
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", op, `{"corpus_id": "c1", "document_id": "d1", "text": "backed up words"}`).Status)
	p.waitDocument(op, "d1", "succeeded")

	r := p.do(http.MethodGet, "/v1/ops/dr/readiness", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "not_ready", r.data()["status"])
	require.Contains(t, r.data()["reasons"], "no backup of the database exists")

	out, err := run(t, env, "", "backup", "create", "--type", "all")
	require.NoError(t, err)
	id := regexp.MustCompile(`backup (\S+) in (\S+):`).FindStringSubmatch(out)
	require.Len(t, id, 3, out)
	require.Contains(t, out, "peak memory")
	manifest := filepath.Join(id[2], "manifest.json")
	out, err = run(t, env, "", "backup", "list")
	require.NoError(t, err)
	require.Contains(t, out, id[1])

	// A fresh database gets the backup, and its tables match the snapshot.
	target := pgtest.NewDatabase(t)
	out, err = run(t, env, "", "backup", "restore", "--manifest", manifest, "--target-db", target, "--dry-run")
	require.NoError(t, err)
	require.Contains(t, out, "checked: signature")
	require.Contains(t, out, "nothing changed")
	out, err = run(t, env, "", "backup", "restore", "--manifest", manifest, "--target-db", target)
	require.NoError(t, err, out)
	require.Regexp(t, `restored db of backup \S+ in \S+; \d+ tables match`, out)
	var text string
	conn, err := pgx.Connect(context.Background(), target)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT content FROM ingest.documents WHERE document_id = 'd1'`).Scan(&text))
	require.Equal(t, "backed up words", text)
	_, err = run(t, env, "", "backup", "restore", "--manifest", manifest)
	require.ErrorContains(t, err, "--allow-destructive", "the live database holds data")

	// One flipped byte: refused before anything is touched.
	raw, err := os.ReadFile(filepath.Join(id[2], "db.dump.age"))
	require.NoError(t, err)
	raw[len(raw)/2] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(id[2], "db.dump.age"), raw, 0o600))
	_, err = run(t, env, "", "backup", "restore", "--manifest", manifest, "--target-db", pgtest.NewDatabase(t))
	require.ErrorContains(t, err, "does not match the manifest")
	raw[len(raw)/2] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(id[2], "db.dump.age"), raw, 0o600))

	// A drill through the maintenance route, then readiness.
	r = p.do(http.MethodPost, "/v1/admin/maintenance/run?task=restore_drill_scheduled", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Contains(t, r.data()["run"].(map[string]any)["detail"], "tables match")
	r = p.do(http.MethodGet, "/v1/ops/dr/readiness", op, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, "ready", r.data()["status"], "%v", r.data()["reasons"])
	require.Equal(t, id[1], r.data()["last_backup"].(map[string]any)["backup_id"])
	require.Equal(t, true, r.data()["last_drill"].(map[string]any)["ok"])

	// A set that vanished from disk is not a backup, whatever the table says.
	require.NoError(t, os.Rename(id[2], id[2]+".moved"))
	r = p.do(http.MethodGet, "/v1/ops/dr/readiness", op, "")
	require.Equal(t, "not_ready", r.data()["status"])
	require.Contains(t, r.data()["reasons"].([]any)[0], "is recorded, but its manifest")
	require.NoError(t, os.Rename(id[2]+".moved", id[2]))

	// A hold on the set: the governance side of pruning.
	r = p.do(http.MethodPost, "/v1/admin/governance/legal-holds", op, `{"scope_type": "backup_set", "scope_id": "`+id[1]+`", "reason": "matter 9"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	out, err = run(t, env, "", "backup", "prune")
	require.NoError(t, err)
	require.NotContains(t, out, "deleted:", "the set is a day from BACKUP_RETENTION_DAYS")
	_, editor := p.createKey("t-op", "editor")
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/ops/dr/readiness", editor, "").Status)
}

package failover

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexusrag/nexusrag/internal/version"
	"github.com/nexusrag/nexusrag/pkg/cmdout"
)

// Backup types and the components each holds.
var typeComponents = map[string][]string{
	"all":      {"db", "schema", "metadata"},
	"db":       {"db"},
	"schema":   {"schema"},
	"metadata": {"metadata"},
}

// Types lists the backup types.
func Types() []string { return []string{"all", "db", "schema", "metadata"} }

// Manifest describes a backup set: manifest.json in its directory.
type Manifest struct {
	Format        int       `json:"format"`
	BackupID      string    `json:"backup_id"`
	Type          string    `json:"type"`
	CreatedAt     time.Time `json:"created_at"`
	AppVersion    string    `json:"app_version"`
	Database      string    `json:"database"`
	ServerVersion string    `json:"server_version"`
	Encrypted     bool      `json:"encrypted"`
	Files         []File    `json:"files"`
}

// File is one file of a backup set: its component, size and SHA-256 as stored (after
// encryption, so that a changed byte is found before anything is decrypted).
type File struct {
	Component string `json:"component"`
	Name      string `json:"name"`
	Bytes     int64  `json:"bytes"`
	SHA256    string `json:"sha256"`
}

// Metadata is the snapshot in the metadata component: the migration version of each
// schema and each table's row count and checksum, read in the same snapshot as the dumps.
type Metadata struct {
	AppVersion string           `json:"app_version"`
	Migrations map[string]int64 `json:"migrations"`
	Tables     []TableStat      `json:"tables"`
}

// TableStat is one table's row count and checksum (the sum of the first 60 bits of each
// row's md5, order-independent).
type TableStat struct {
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
	Checksum string `json:"checksum"`
}

// Backups makes, lists, verifies and restores backup sets of one database.
type Backups struct {
	cfg   Config
	dbURL string
	keys  keys
	// Progress, when set, is told each component's progress (a terminal).
	Progress io.Writer
}

// NewBackups returns the backups of the database at dbURL.
func NewBackups(cfg Config, dbURL string) (*Backups, error) {
	k, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	return &Backups{cfg: cfg, dbURL: dbURL, keys: k}, nil
}

// AppVersion is the binary's version and revision (internal/version).
func AppVersion() string { return version.String() }

func newBackupID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Create makes a backup set of type typ in BACKUP_LOCAL_DIR. The files are written to a
// ".partial" directory renamed when complete: a set that is listed is whole.
func (b *Backups) Create(ctx context.Context, typ string) (Manifest, string, error) {
	comps, ok := typeComponents[typ]
	if !ok {
		return Manifest{}, "", fmt.Errorf("--type must be one of %s", strings.Join(Types(), ", "))
	}
	if b.cfg.EncryptionEnabled && len(b.keys.identities) == 0 {
		return Manifest{}, "", errors.New("BACKUP_ENCRYPTION_ENABLED is true and BACKUP_ENCRYPTION_KEY is not set")
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return Manifest{}, "", fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// One snapshot for every component: the dumps run in it (pg_dump --snapshot) while
	// this transaction stays open, and the metadata is read in it.
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return Manifest{}, "", err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	var snapshot string
	m := Manifest{Format: 1, Type: typ, CreatedAt: time.Now().UTC(), AppVersion: AppVersion(), Encrypted: b.cfg.EncryptionEnabled}
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot(), current_database(), current_setting('server_version')`).Scan(&snapshot, &m.Database, &m.ServerVersion); err != nil {
		return Manifest{}, "", fmt.Errorf("export a snapshot: %w", err)
	}
	m.BackupID = newBackupID(m.CreatedAt)
	final := filepath.Join(b.cfg.LocalDir, m.BackupID)
	partial := filepath.Join(b.cfg.LocalDir, "."+m.BackupID+".partial")
	if err := os.MkdirAll(partial, 0o700); err != nil {
		return Manifest{}, "", fmt.Errorf("backup directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(partial)
		}
	}()
	for _, c := range comps {
		var f File
		switch c {
		case "db":
			f, err = b.writeFile(ctx, partial, c, "db.dump", func(w io.Writer) error {
				return b.pgDump(ctx, w, "--format=custom", "--snapshot="+snapshot)
			})
		case "schema":
			f, err = b.writeFile(ctx, partial, c, "schema.sql", func(w io.Writer) error {
				return b.pgDump(ctx, w, "--schema-only", "--format=plain", "--snapshot="+snapshot)
			})
		case "metadata":
			f, err = b.writeFile(ctx, partial, c, "metadata.json", func(w io.Writer) error {
				md, err := readMetadata(ctx, tx)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(md)
			})
		}
		if err != nil {
			return Manifest{}, "", fmt.Errorf("%s: %w", c, err)
		}
		m.Files = append(m.Files, f)
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, "", err
	}
	if err := os.WriteFile(filepath.Join(partial, "manifest.json"), raw, 0o600); err != nil {
		return Manifest{}, "", err
	}
	if b.cfg.SigningEnabled {
		if len(b.keys.signers) == 0 {
			return Manifest{}, "", errors.New("BACKUP_SIGNING_ENABLED is true and BACKUP_SIGNING_KEY is not set")
		}
		if err := os.WriteFile(filepath.Join(partial, "manifest.sig"), b.keys.sign(raw), 0o600); err != nil {
			return Manifest{}, "", err
		}
	}
	if err := os.Rename(partial, final); err != nil {
		return Manifest{}, "", fmt.Errorf("complete the backup: %w", err)
	}
	done = true
	return m, final, nil
}

// counter counts bytes and reports progress every few MiB.
type counter struct {
	n, next   int64
	name      string
	progress  io.Writer
	startedAt time.Time
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.progress != nil && c.n >= c.next {
		fmt.Fprintf(c.progress, "\r%-9s %8.1f MiB  %5.1fs", c.name, float64(c.n)/(1<<20), time.Since(c.startedAt).Seconds())
		c.next = c.n + 4<<20
	}
	return len(p), nil
}

// writeFile streams what produce writes into dir/name (encrypted when configured),
// hashing and counting the stored bytes: memory stays flat whatever the size.
func (b *Backups) writeFile(ctx context.Context, dir, component, name string, produce func(io.Writer) error) (File, error) {
	if b.cfg.EncryptionEnabled {
		name += ".age"
	}
	out, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return File{}, err
	}
	defer out.Close()
	sum := sha256.New()
	stored := &counter{}
	var w io.Writer = io.MultiWriter(out, sum, stored)
	var enc io.WriteCloser
	if b.cfg.EncryptionEnabled {
		if enc, err = b.keys.encrypt(w); err != nil {
			return File{}, err
		}
		w = enc
	}
	progress := &counter{name: component, progress: b.Progress, startedAt: time.Now()}
	if err := produce(io.MultiWriter(w, progress)); err != nil {
		return File{}, err
	}
	if enc != nil {
		if err := enc.Close(); err != nil {
			return File{}, err
		}
	}
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, "\r%-9s %8.1f MiB  %5.1fs  done\n", component, float64(progress.n)/(1<<20), time.Since(progress.startedAt).Seconds())
	}
	if err := out.Sync(); err != nil {
		return File{}, err
	}
	return File{Component: component, Name: name, Bytes: stored.n, SHA256: hex.EncodeToString(sum.Sum(nil))}, ctx.Err()
}

// pgDump runs pg_dump with args against the database, its output into w.
func (b *Backups) pgDump(ctx context.Context, w io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "pg_dump", append(args, "--no-owner", "--no-privileges", "--dbname="+b.dbURL)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &cmdout.Head{W: &stderr, N: 4096}
	if err := runSampled(cmd); err != nil {
		return fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// readMetadata reads the migration versions and every table's rows and checksum.
func readMetadata(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) (Metadata, error) {
	md := Metadata{AppVersion: AppVersion(), Migrations: map[string]int64{}}
	tables, err := userTables(ctx, q)
	if err != nil {
		return md, err
	}
	for _, t := range tables {
		if strings.HasSuffix(t, ".goose_db_version") {
			var v int64
			if err := q.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM `+t+` WHERE is_applied`).Scan(&v); err != nil {
				return md, fmt.Errorf("migration version of %s: %w", t, err)
			}
			md.Migrations[strings.TrimSuffix(t, ".goose_db_version")] = v
		}
		st, err := tableStat(ctx, q, t)
		if err != nil {
			return md, err
		}
		md.Tables = append(md.Tables, st)
	}
	return md, nil
}

// userTables lists the database's own tables (quoted "schema"."table"), sorted.
func userTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
		AND NOT c.relispartition ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func tableStat(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (TableStat, error) {
	st := TableStat{Table: table}
	err := q.QueryRow(ctx, `SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint::numeric), 0)::text FROM `+table+` t`).
		Scan(&st.Rows, &st.Checksum)
	if err != nil {
		return st, fmt.Errorf("count %s: %w", table, err)
	}
	return st, nil
}

// Listed is a backup set found in BACKUP_LOCAL_DIR.
type Listed struct {
	Manifest
	Dir    string
	Signed bool
	Bytes  int64
}

// List reads every complete backup set, newest first.
func (b *Backups) List() ([]Listed, error) {
	entries, err := os.ReadDir(b.cfg.LocalDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Listed
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(b.cfg.LocalDir, e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			continue // not a backup set
		}
		var m Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			continue
		}
		l := Listed{Manifest: m, Dir: dir}
		_, err = os.Stat(filepath.Join(dir, "manifest.sig"))
		l.Signed = err == nil
		for _, f := range m.Files {
			l.Bytes += f.Bytes
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// Prune deletes the backup sets older than BACKUP_RETENTION_DAYS, except those held
// (legal holds of scope backup_set); it returns the deleted and the held ids.
func (b *Backups) Prune(now time.Time, held func(id string) (bool, error)) (deleted, kept []string, err error) {
	sets, err := b.List()
	if err != nil {
		return nil, nil, err
	}
	cutoff := now.Add(-time.Duration(b.cfg.RetentionDays) * 24 * time.Hour)
	for _, s := range sets {
		if !s.CreatedAt.Before(cutoff) {
			continue
		}
		h, err := held(s.BackupID)
		if err != nil {
			return deleted, kept, err
		}
		if h {
			kept = append(kept, s.BackupID)
			continue
		}
		if err := os.RemoveAll(s.Dir); err != nil {
			return deleted, kept, err
		}
		deleted = append(deleted, s.BackupID)
	}
	return deleted, kept, nil
}

// hashFile returns the SHA-256 and size of a file, streamed.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

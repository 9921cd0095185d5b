package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nexusrag/nexusrag/pkg/cmdout"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

// RestoreOptions say what to restore where.
type RestoreOptions struct {
	// Manifest is the path of the set's manifest.json.
	Manifest string
	// Components: "all", or any of db, schema, metadata.
	Components []string
	// TargetURL is the database restored into (created when missing).
	TargetURL string
	DryRun    bool
	// AllowDestructive lets a restore replace a database that holds data.
	AllowDestructive bool
}

// RestoreReport is what a restore checked and did.
type RestoreReport struct {
	BackupID   string
	Components []string
	// SignedBy is the key id of a verified signature ("" when unsigned).
	SignedBy string
	// Checked lists what was verified: checksums, signature, decryption.
	Checked  []string
	Restored []string
	// Verified: the restored tables' rows and checksums equal the metadata's.
	Verified int
	Notes    []string
	Duration time.Duration
}

// Verify checks a set before anything is touched: the manifest's signature (required
// when RESTORE_REQUIRE_SIGNATURE), each selected file's size and SHA-256, and that each
// encrypted file decrypts and authenticates to its end.
func (b *Backups) Verify(opts RestoreOptions) (Manifest, RestoreReport, error) {
	var rep RestoreReport
	raw, err := os.ReadFile(opts.Manifest)
	if err != nil {
		return Manifest{}, rep, fmt.Errorf("read the manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil || m.Format != 1 || m.BackupID == "" {
		return Manifest{}, rep, fmt.Errorf("%s is not a NexusRAG backup manifest", opts.Manifest)
	}
	rep.BackupID = m.BackupID
	dir := filepath.Dir(opts.Manifest)
	sig, err := os.ReadFile(filepath.Join(dir, "manifest.sig"))
	switch {
	case errors.Is(err, os.ErrNotExist) && b.cfg.RequireSignature:
		return m, rep, errors.New("the backup is not signed and RESTORE_REQUIRE_SIGNATURE is true: refused")
	case errors.Is(err, os.ErrNotExist):
		rep.Notes = append(rep.Notes, "the backup is not signed")
	case err != nil:
		return m, rep, err
	case len(b.keys.signers) == 0 && b.cfg.RequireSignature:
		return m, rep, errors.New("RESTORE_REQUIRE_SIGNATURE is true and BACKUP_SIGNING_KEY is not set: the signature cannot be checked")
	case len(b.keys.signers) == 0:
		rep.Notes = append(rep.Notes, "the signature was not checked: BACKUP_SIGNING_KEY is not set")
	default:
		if rep.SignedBy, err = b.keys.verify(raw, sig); err != nil {
			return m, rep, err
		}
		rep.Checked = append(rep.Checked, "signature (key "+rep.SignedBy+")")
	}
	comps, err := selectComponents(m, opts.Components)
	if err != nil {
		return m, rep, err
	}
	rep.Components = comps
	for _, f := range m.Files {
		if !slices.Contains(comps, f.Component) {
			continue
		}
		path := filepath.Join(dir, filepath.Base(f.Name))
		sum, n, err := hashFile(path)
		if err != nil {
			return m, rep, fmt.Errorf("%s: %w", f.Name, err)
		}
		if n != f.Bytes || sum != f.SHA256 {
			return m, rep, fmt.Errorf("%s does not match the manifest (size %d, want %d; sha256 %s, want %s): the file was changed or damaged; refused",
				f.Name, n, f.Bytes, sum[:12], f.SHA256[:min(12, len(f.SHA256))])
		}
		rep.Checked = append(rep.Checked, "checksum of "+f.Name)
		if m.Encrypted {
			r, closeFile, err := b.open(path, true)
			if err != nil {
				return m, rep, fmt.Errorf("%s: %w", f.Name, err)
			}
			_, err = io.Copy(io.Discard, r)
			closeFile()
			if err != nil {
				return m, rep, fmt.Errorf("%s does not decrypt: %w", f.Name, err)
			}
			rep.Checked = append(rep.Checked, "decryption of "+f.Name)
		}
	}
	return m, rep, nil
}

func selectComponents(m Manifest, want []string) ([]string, error) {
	var have []string
	for _, f := range m.Files {
		have = append(have, f.Component)
	}
	if len(want) == 0 || slices.Contains(want, "all") {
		return have, nil
	}
	for _, c := range want {
		if !slices.Contains(have, c) {
			return nil, fmt.Errorf("component %q is not in backup %s (it holds %s)", c, m.BackupID, strings.Join(have, ", "))
		}
	}
	return want, nil
}

// open returns a file's plain content (decrypted when encrypted) and its closer.
func (b *Backups) open(path string, encrypted bool) (io.Reader, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	if !encrypted {
		return f, func() { f.Close() }, nil
	}
	r, err := b.keys.decrypt(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { f.Close() }, nil
}

// Restore verifies the set, then restores the selected components into the target
// database and checks the restored tables against the metadata snapshot. With DryRun it
// stops after verifying and says what it would do.
func (b *Backups) Restore(ctx context.Context, opts RestoreOptions) (RestoreReport, error) {
	started := time.Now()
	m, rep, err := b.Verify(opts)
	if err != nil {
		return rep, err
	}
	target := opts.TargetURL
	if target == "" {
		target = b.dbURL
	}
	dbName, err := databaseName(target)
	if err != nil {
		return rep, err
	}
	holding, err := tablesWithRows(ctx, target)
	if err != nil {
		return rep, err
	}
	restoresData := slices.Contains(rep.Components, "db") || slices.Contains(rep.Components, "schema")
	destructive := restoresData && holding > 0
	if opts.DryRun {
		for _, c := range rep.Components {
			switch {
			case c == "metadata":
				rep.Notes = append(rep.Notes, "would check every restored table against the metadata snapshot")
			case c == "schema" && slices.Contains(rep.Components, "db"):
				rep.Notes = append(rep.Notes, "schema: contained in db, would not be applied again")
			default:
				rep.Notes = append(rep.Notes, fmt.Sprintf("would restore %s into database %s", c, dbName))
			}
		}
		if destructive {
			rep.Notes = append(rep.Notes, fmt.Sprintf("database %s holds data (%d tables with rows): the restore would replace it, and needs --allow-destructive", dbName, holding))
		}
		rep.Duration = time.Since(started)
		return rep, nil
	}
	if destructive && !opts.AllowDestructive {
		return rep, fmt.Errorf("the target database %s holds data (%d tables with rows): restoring replaces it; pass --allow-destructive to do so", dbName, holding)
	}
	if err := pgstore.EnsureDatabase(ctx, target); err != nil {
		return rep, err
	}
	dir := filepath.Dir(opts.Manifest)
	file := map[string]File{}
	for _, f := range m.Files {
		file[f.Component] = f
	}
	if slices.Contains(rep.Components, "db") {
		args := []string{"--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction", "--dbname=" + target}
		if holding > 0 {
			args = append(args, "--clean", "--if-exists")
		}
		if err := b.feed(ctx, filepath.Join(dir, file["db"].Name), m.Encrypted, "pg_restore", args...); err != nil {
			return rep, err
		}
		rep.Restored = append(rep.Restored, "db")
	} else if slices.Contains(rep.Components, "schema") {
		if err := b.feed(ctx, filepath.Join(dir, file["schema"].Name), m.Encrypted, "psql", "--quiet", "--no-psqlrc",
			"-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname="+target, "--file=-"); err != nil {
			return rep, err
		}
		rep.Restored = append(rep.Restored, "schema")
	}
	if slices.Contains(rep.Components, "db") && slices.Contains(rep.Components, "schema") {
		rep.Notes = append(rep.Notes, "schema: contained in db, not applied again")
	}
	if f, ok := file["metadata"]; ok && slices.Contains(rep.Restored, "db") {
		n, err := b.checkRestored(ctx, filepath.Join(dir, f.Name), m.Encrypted, target)
		if err != nil {
			return rep, err
		}
		rep.Verified = n
	}
	rep.Duration = time.Since(started)
	return rep, nil
}

// feed streams a (decrypted) file into a command's standard input.
func (b *Backups) feed(ctx context.Context, path string, encrypted bool, name string, args ...string) error {
	r, closeFile, err := b.open(path, encrypted)
	if err != nil {
		return err
	}
	defer closeFile()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = r, &cmdout.Head{W: &stderr, N: 4096}
	if err := runSampled(cmd); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// checkRestored compares every table of the metadata snapshot with the target's.
func (b *Backups) checkRestored(ctx context.Context, path string, encrypted bool, target string) (int, error) {
	r, closeFile, err := b.open(path, encrypted)
	if err != nil {
		return 0, err
	}
	defer closeFile()
	var md Metadata
	if err := json.NewDecoder(r).Decode(&md); err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var diffs []string
	for _, want := range md.Tables {
		got, err := tableStat(ctx, conn, want.Table)
		if err != nil {
			diffs = append(diffs, want.Table+": missing")
			continue
		}
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: %d rows (checksum %s), backup had %d (%s)", want.Table, got.Rows, got.Checksum, want.Rows, want.Checksum))
		}
	}
	if len(diffs) > 0 {
		return 0, fmt.Errorf("the restored database differs from the backup's snapshot: %s", strings.Join(diffs, "; "))
	}
	return len(md.Tables), nil
}

func databaseName(dbURL string) (string, error) {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return "", fmt.Errorf("the target database URL: %w", err)
	}
	return cfg.Database, nil
}

// tablesWithRows counts the target's tables holding rows (0 when the database is missing).
func tablesWithRows(ctx context.Context, target string) (int, error) {
	conn, err := pgx.Connect(ctx, target)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return 0, nil
		}
		return 0, fmt.Errorf("connect to the target database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tables, err := userTables(ctx, conn)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range tables {
		var has bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t+`)`).Scan(&has); err != nil {
			return 0, err
		}
		if has {
			n++
		}
	}
	return n, nil
}

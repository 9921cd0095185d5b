package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/services/failover"
)

// backupCmd makes, lists, prunes and restores backup sets (README "Backups and restore"),
// through the failover service run in this process.
func backupCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Back up and restore the platform's database (operator tool)"}
	var typ string
	create := &cobra.Command{
		Use:   "create --type all|db|schema|metadata",
		Short: "Make a backup set in BACKUP_LOCAL_DIR: dump, schema, metadata snapshot, manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFailover(cmd.Context(), func(ctx context.Context, s *failover.Server) error {
				if isTerminal(os.Stderr) {
					s.Backups().Progress = os.Stderr
				}
				started := time.Now()
				m, dir, err := s.CreateBackup(ctx, typ)
				if err != nil {
					return err
				}
				var bytes int64
				for _, f := range m.Files {
					bytes += f.Bytes
					fmt.Printf("%-9s %-20s %12d bytes  sha256 %s\n", f.Component, f.Name, f.Bytes, f.SHA256)
				}
				fmt.Printf("backup %s in %s: %d files, %d bytes, encrypted %t, %s\n", m.BackupID, dir, len(m.Files), bytes, m.Encrypted,
					time.Since(started).Round(time.Millisecond))
				printPeakMemory()
				return nil
			})
		},
	}
	create.Flags().StringVar(&typ, "type", "all", "all, db, schema or metadata")

	var opts failover.RestoreOptions
	var components string
	restore := &cobra.Command{
		Use:   "restore --manifest PATH [--components all|db,schema,...] [--dry-run] [--allow-destructive] [--target-db URL]",
		Short: "Verify a backup set (checksums, signature, decryption), then restore it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Manifest == "" {
				return errors.New("--manifest is required (the manifest.json of a backup set; `nexusrag backup list`)")
			}
			opts.Components = strings.Split(components, ",")
			return withFailover(cmd.Context(), func(ctx context.Context, s *failover.Server) error {
				rep, err := s.RestoreBackup(ctx, opts)
				for _, c := range rep.Checked {
					fmt.Println("checked:", c)
				}
				for _, n := range rep.Notes {
					fmt.Println("note:", n)
				}
				if err != nil {
					return fmt.Errorf("restore refused or failed, see above: %w", err)
				}
				if opts.DryRun {
					fmt.Printf("dry run of backup %s: everything checked, nothing changed\n", rep.BackupID)
					return nil
				}
				fmt.Printf("restored %s of backup %s in %s; %d tables match the backup's row counts and checksums\n",
					strings.Join(rep.Restored, ", "), rep.BackupID, rep.Duration.Round(time.Millisecond), rep.Verified)
				printPeakMemory()
				return nil
			})
		},
	}
	restore.Flags().StringVar(&opts.Manifest, "manifest", "", "the manifest.json of the backup set")
	restore.Flags().StringVar(&components, "components", "all", "all, or a comma-separated list of db, schema, metadata")
	restore.Flags().BoolVar(&opts.DryRun, "dry-run", false, "verify and print what would be done; change nothing")
	restore.Flags().BoolVar(&opts.AllowDestructive, "allow-destructive", false, "replace a target database that holds data")
	restore.Flags().StringVar(&opts.TargetURL, "target-db", "", "the database to restore into (default: DATABASE_URL); created when missing")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the backup sets in BACKUP_LOCAL_DIR, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFailover(cmd.Context(), func(_ context.Context, s *failover.Server) error {
				sets, err := s.Backups().List()
				if err != nil {
					return err
				}
				w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "BACKUP\tTYPE\tCREATED\tBYTES\tENCRYPTED\tSIGNED\tMANIFEST")
				for _, b := range sets {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%t\t%t\t%s/manifest.json\n", b.BackupID, b.Type, b.CreatedAt.Format(time.RFC3339), b.Bytes, b.Encrypted, b.Signed, b.Dir)
				}
				return w.Flush()
			})
		},
	}
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Delete the backup sets older than BACKUP_RETENTION_DAYS, except those under a legal hold",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withFailover(cmd.Context(), func(ctx context.Context, s *failover.Server) error {
				deleted, kept, err := s.Prune(ctx)
				for _, id := range deleted {
					fmt.Println("deleted:", id)
				}
				for _, id := range kept {
					fmt.Println("kept (legal hold):", id)
				}
				return err
			})
		},
	}
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Print a new BACKUP_ENCRYPTION_KEY (age X25519) and BACKUP_SIGNING_KEY (Ed25519 seed)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			enc, err := failover.NewEncryptionKey()
			if err != nil {
				return err
			}
			sig, err := failover.NewSigningKey()
			if err != nil {
				return err
			}
			fmt.Printf("BACKUP_ENCRYPTION_KEY=%s\nBACKUP_SIGNING_KEY=%s\n", enc, sig)
			return nil
		},
	}
	cmd.AddCommand(create, restore, list, prune, keygen)
	return cmd
}

func withFailover(ctx context.Context, fn func(context.Context, *failover.Server) error) error {
	a, err := openApp(ctx, "failover")
	if err != nil {
		return fmt.Errorf("%w (did you run `nexusrag migrate`?)", err)
	}
	return errors.Join(fn(ctx, a.failover), a.stop()) // stop flushes the audit events
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// printPeakMemory prints this process's peak resident memory and that of the tools it
// ran (pg_dump, pg_restore, psql), each its own (not getrusage's, which counts the parent's
// memory at fork).
func printPeakMemory() {
	fmt.Printf("peak memory: nexusrag %.1f MiB, largest child (pg_dump/pg_restore/psql) %.1f MiB\n",
		float64(failover.SelfPeakKiB())/1024, float64(failover.ToolPeakKiB())/1024)
}

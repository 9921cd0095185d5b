package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

func migrateCmd() *cobra.Command {
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply every service's database migrations (idempotent); --status lists them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status {
				return migrateStatus(cmd.Context())
			}
			return migrate(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&status, "status", false, "list migrations and whether each is applied")
	return cmd
}

func migrate(ctx context.Context) error {
	cfg, log, err := loadPlatform(os.Stderr)
	if err != nil {
		return err
	}
	if err := pgstore.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	pool, err := pgstore.Connect(ctx, cfg.DatabaseURL, pgstore.Options{Application: "nexusrag-migrate"})
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool, log, modules().migrationSets()...); err != nil {
		return err
	}
	fmt.Println("migrations applied")
	return nil
}

func migrateStatus(ctx context.Context) error {
	cfg, err := config.Parse[platformConfig](nil)
	if err != nil {
		return err
	}
	pool, err := pgstore.Connect(ctx, cfg.DatabaseURL, pgstore.Options{Application: "nexusrag-migrate"})
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	st, err := pgstore.Status(ctx, pool, modules().migrationSets()...)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEMA\tVERSION\tMIGRATION\tAPPLIED AT")
	for _, s := range st {
		at := "pending"
		if s.Applied {
			at = s.AppliedAt
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Schema, s.Version, s.Name, at)
	}
	return tw.Flush()
}

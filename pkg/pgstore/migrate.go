package pgstore

import (
	"context"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// Migrations are one schema's embedded .sql migrations (goose format: -- +goose Up/Down).
type Migrations struct {
	// Schema is the Postgres schema the service owns; its version table lives there too.
	Schema string
	FS     fs.FS
}

// MigrationStatus is one migration of one schema.
type MigrationStatus struct {
	Schema  string
	Version int64
	Name    string
	Applied bool
	// AppliedAt is the zero time when not applied.
	AppliedAt string
}

//go:embed platform/*.sql
var platformFS embed.FS

// Platform holds the database-wide prerequisites (extensions such as pgvector's vector),
// applied before any service schema.
func Platform() Migrations { return Embedded("platform", platformFS, "platform") }

// Embedded returns the migrations in directory dir of an embedded file system: each
// service embeds its migrations/ folder and names its schema.
func Embedded(schema string, fsys fs.FS, dir string) Migrations {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("migrations of schema %s: %v", schema, err)) // embedded at build time: a bug, not an input
	}
	return Migrations{Schema: schema, FS: sub}
}

// Migrate applies all pending migrations of each set, in order. It is idempotent and
// safe to run from several processes at once (a Postgres advisory lock per schema).
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, sets ...Migrations) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	for _, m := range sets {
		p, err := provider(ctx, pool, m)
		if err != nil {
			return err
		}
		results, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrate schema %s: %w", m.Schema, err)
		}
		for _, r := range results {
			log.InfoContext(ctx, "migration applied", "schema", m.Schema, "version", r.Source.Version,
				"file", r.Source.Path, "duration_ms", r.Duration.Milliseconds())
		}
	}
	return nil
}

// Status lists every migration of each set and whether it is applied.
func Status(ctx context.Context, pool *pgxpool.Pool, sets ...Migrations) ([]MigrationStatus, error) {
	var out []MigrationStatus
	for _, m := range sets {
		p, err := provider(ctx, pool, m)
		if err != nil {
			return nil, err
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("migration status of schema %s: %w", m.Schema, err)
		}
		for _, s := range st {
			ms := MigrationStatus{Schema: m.Schema, Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied}
			if ms.Applied {
				ms.AppliedAt = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			out = append(out, ms)
		}
	}
	return out, nil
}

func provider(ctx context.Context, pool *pgxpool.Pool, m Migrations) (*goose.Provider, error) {
	// The version table lives in the service's schema, so the schema must exist first.
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quoteIdent(m.Schema)); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", m.Schema, err)
	}
	store, err := database.NewStore(goose.DialectPostgres, m.Schema+".goose_db_version")
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("nexusrag.migrate." + m.Schema))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider("", stdlib.OpenDBFromPool(pool), m.FS,
		goose.WithStore(store), goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("load migrations of schema %s: %w", m.Schema, err)
	}
	return p, nil
}

func quoteIdent(s string) string { return `"` + s + `"` }

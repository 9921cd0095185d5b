// Package pgtest gives each test package its own PostgreSQL database on the shared
// local server: created with a random name, migrated, and dropped when the test ends.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

// AdminURL is the server tests create databases on; NEXUSRAG_TEST_DATABASE_URL overrides it.
func AdminURL() string {
	if u := os.Getenv("NEXUSRAG_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database and returns its URL; it is dropped on cleanup.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v (is PostgreSQL running? make deps)", AdminURL(), err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "nexusrag_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), AdminURL())
		if err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		tb.Fatalf("pgtest: parse admin url: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewPool creates a database, applies the platform migrations and sets, and returns a pool
// that is closed on cleanup.
func NewPool(tb testing.TB, sets ...pgstore.Migrations) *pgxpool.Pool {
	tb.Helper()
	return NewPoolWith(tb, pgstore.Options{Application: "nexusrag-test"}, sets...)
}

// NewPoolWith is NewPool with pool options (session settings, size).
func NewPoolWith(tb testing.TB, o pgstore.Options, sets ...pgstore.Migrations) *pgxpool.Pool {
	tb.Helper()
	dsn := NewDatabase(tb)
	ctx := context.Background()
	pool, err := pgstore.Connect(ctx, dsn, o)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(pool.Close)
	all := append([]pgstore.Migrations{pgstore.Platform()}, sets...)
	if err := pgstore.Migrate(ctx, pool, logging.Discard(), all...); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return pool
}

// MustExec runs sql or fails the test.
func MustExec(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("pgtest: %s: %v", sql, fmt.Sprint(err))
	}
}

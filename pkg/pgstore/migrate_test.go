package pgstore_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
)

func TestMigrateIsIdempotentAndReportsStatus(t *testing.T) {
	ctx := context.Background()
	set := pgstore.Migrations{Schema: "demo", FS: fstest.MapFS{
		"00001_things.sql": {Data: []byte("-- +goose Up\nCREATE TABLE demo.things (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE demo.things;\n")},
	}}
	pool := pgtest.NewPool(t)
	for range 2 {
		require.NoError(t, pgstore.Migrate(ctx, pool, logging.Discard(), pgstore.Platform(), set))
	}
	st, err := pgstore.Status(ctx, pool, pgstore.Platform(), set)
	require.NoError(t, err)
	require.Len(t, st, 2)
	for _, s := range st {
		require.True(t, s.Applied, "%s/%s", s.Schema, s.Name)
	}
	var ext string
	require.NoError(t, pool.QueryRow(ctx, "SELECT extname FROM pg_extension WHERE extname = 'vector'").Scan(&ext))
	pgtest.MustExec(t, pool, "INSERT INTO demo.things VALUES (1)")
}

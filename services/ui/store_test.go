package ui

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// Actions older than the retention are pruned; younger ones stay.
func TestActionsArePruned(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, Migrations())
	s := NewStore(pool)
	for _, id := range []string{"018f0000-0000-7000-8000-000000000001", "018f0000-0000-7000-8000-000000000002"} {
		_, err := s.Record(ctx, action{id: id, tenant: "t1", kind: "reindex-document", entity: "document", entityID: "d1", actor: "k1"})
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `UPDATE ui.actions SET accepted_at = now() - interval '31 days' WHERE action_id = '018f0000-0000-7000-8000-000000000001'`)
	require.NoError(t, err)
	n, err := s.Prune(ctx, time.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM ui.actions`).Scan(&left))
	require.Equal(t, 1, left)
}

// A cursor opens under the keys that sealed it, and after a rotation while the old key
// is still in the ring; never under other keys or another binding.
func TestCursorsAreSignedAndBound(t *testing.T) {
	old, fresh := svcauth.NewSecret(), svcauth.NewSecret()
	ring := func(secrets ...string) *Server {
		k, err := svcauth.FromSecrets(secrets)
		require.NoError(t, err)
		return &Server{keys: k, log: logging.Discard()}
	}
	a := ring(old)
	c := a.sealCursor("b1", []string{"2026-11-29T10:00:00Z", "doc-1"})
	after, err := a.openCursor(c, "b1")
	require.NoError(t, err)
	require.Equal(t, []string{"2026-11-29T10:00:00Z", "doc-1"}, after)

	_, err = ring(fresh, old).openCursor(c, "b1")
	require.NoError(t, err, "rotated: the old key still verifies")
	for name, s := range map[string]*Server{"other keys": ring(fresh), "same keys": a} {
		binding := "b1"
		if name == "same keys" {
			binding = "b2"
		}
		_, err := s.openCursor(c, binding)
		e, ok := apierr.From(err)
		require.True(t, ok, name)
		require.Equal(t, CodeInvalidCursor, e.Code, name)
	}
}

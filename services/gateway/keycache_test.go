package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
)

func authCode(t *testing.T, err error) string {
	t.Helper()
	e, ok := err.(*apierr.Error)
	require.True(t, ok, "want *apierr.Error, got %T %v", err, err)
	return e.Code
}

func TestKeyFormat(t *testing.T) {
	id, plaintext, hash := newKey()
	gotID, gotHash, err := parseKey(plaintext)
	require.NoError(t, err)
	require.Equal(t, id, gotID)
	require.Equal(t, hash, gotHash)
	for _, bad := range []string{"", "nrk_", plaintext[:len(plaintext)-1], plaintext + "a", "xyz" + plaintext[3:], plaintext[:20] + "-" + plaintext[21:], "Bearer " + plaintext} {
		_, _, err := parseKey(bad)
		require.ErrorIs(t, err, errMalformedKey, bad)
	}
}

// TestRevocationReachesEveryReplica runs two caches (two gateway replicas) over one
// database: a key revoked through one is refused by the other within 5 seconds.
func TestRevocationReachesEveryReplica(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, Migrations())
	store := NewStore(pool)
	k, plaintext, err := store.CreateKey(ctx, "t1", "ci", "editor", nil)
	require.NoError(t, err)

	replicaA := NewKeyCache(store, logging.Discard(), 100*time.Millisecond, time.Second)
	replicaB := NewKeyCache(store, logging.Discard(), 100*time.Millisecond, time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go replicaB.Run(runCtx)

	for _, c := range []*KeyCache{replicaA, replicaB} {
		p, err := c.Authenticate(ctx, plaintext)
		require.NoError(t, err)
		require.Equal(t, "t1", p.TenantID)
		require.Equal(t, k.ID, p.KeyID)
		require.Equal(t, apiv1.Role_ROLE_EDITOR, p.Role)
	}

	revoked, err := store.RevokeKey(ctx, "t1", k.ID)
	require.NoError(t, err)
	replicaA.Apply(revoked) // the replica that served the revoke knows at once
	_, err = replicaA.Authenticate(ctx, plaintext)
	require.Equal(t, CodeAuthRevoked, authCode(t, err))

	start := time.Now()
	require.Eventually(t, func() bool {
		_, err := replicaB.Authenticate(ctx, plaintext)
		return err != nil && authCode(t, err) == CodeAuthRevoked
	}, 5*time.Second, 20*time.Millisecond)
	t.Logf("revocation reached the other replica after %s", time.Since(start).Round(time.Millisecond))
}

func TestAuthenticateRefusesWithoutQueryingOnTheHotPath(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, Migrations())
	store := NewStore(pool)
	_, plaintext, err := store.CreateKey(ctx, "t1", "ci", "reader", nil)
	require.NoError(t, err)
	cache := NewKeyCache(store, logging.Discard(), time.Second, time.Minute)
	require.NoError(t, cache.Sync(ctx))

	acquires := func() int64 { return pool.Stat().AcquireCount() }
	before := acquires()
	for range 100 {
		_, err := cache.Authenticate(ctx, plaintext)
		require.NoError(t, err)
	}
	require.Equal(t, before, acquires(), "a known key is verified from memory")

	wrongSecret := plaintext[:len(plaintext)-4] + "aaaa"
	if wrongSecret == plaintext {
		wrongSecret = plaintext[:len(plaintext)-4] + "bbbb"
	}
	_, err = cache.Authenticate(ctx, wrongSecret)
	require.Equal(t, CodeAuthInvalid, authCode(t, err))

	_, err = cache.Authenticate(ctx, "not-a-key")
	require.Equal(t, CodeAuthInvalid, authCode(t, err))
	require.Equal(t, before, acquires(), "wrong secrets and malformed keys never reach Postgres")

	unknownID, unknownKey, _ := newKey()
	_, err = cache.Authenticate(ctx, unknownKey)
	require.Equal(t, CodeAuthInvalid, authCode(t, err))
	afterFirst := acquires()
	require.Equal(t, before+1, afterFirst, "an unknown key id is looked up once")
	for range 10 {
		_, err = cache.Authenticate(ctx, unknownKey)
		require.Equal(t, CodeAuthInvalid, authCode(t, err))
	}
	require.Equal(t, afterFirst, acquires(), "then remembered as unknown (%s)", unknownID)
}

func TestKeyCreatedAfterSyncIsFoundOnDemand(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t, Migrations())
	store := NewStore(pool)
	cache := NewKeyCache(store, logging.Discard(), time.Second, time.Minute)
	require.NoError(t, cache.Sync(ctx))
	_, plaintext, err := store.CreateKey(ctx, "t2", "fresh", "admin", nil)
	require.NoError(t, err)
	p, err := cache.Authenticate(ctx, plaintext)
	require.NoError(t, err)
	require.Equal(t, "t2", p.TenantID)
}

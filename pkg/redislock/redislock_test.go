package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/redislock"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

func TestOnlyTheHolderReleases(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ctx := context.Background()
	key := prefix + "lock"
	first, ok, err := redislock.Acquire(ctx, rdb, key, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = redislock.Acquire(ctx, rdb, key, time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "held")

	// The first lease lapses and another takes the key: the first holder's release must not free it.
	require.NoError(t, rdb.Del(ctx, key).Err())
	second, ok, err := redislock.Acquire(ctx, rdb, key, time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, first())
	_, ok, err = redislock.Acquire(ctx, rdb, key, time.Minute)
	require.NoError(t, err)
	require.False(t, ok, "still the second holder's")
	require.NoError(t, second())
	_, ok, err = redislock.Acquire(ctx, rdb, key, time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "free once its holder released it")
}

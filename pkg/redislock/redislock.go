// Package redislock is a lease in Redis: SET NX with an expiry and a random token, released
// only by its holder (a compare-and-delete script), so that a holder that outlived its
// lease cannot release the next one's.
package redislock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/redis/go-redis/v9"
)

var release = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// Acquire takes key for ttl. ok is false when another holds it; release gives it back
// (errors are only the caller's to log: the lease lapses by itself).
func Acquire(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) (release func() error, ok bool, err error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ok, err = rdb.SetNX(ctx, key, token, ttl).Result()
	if err != nil || !ok {
		return nil, ok, err
	}
	return func() error { return releaseScript(context.WithoutCancel(ctx), rdb, key, token) }, true, nil
}

func releaseScript(ctx context.Context, rdb redis.UniversalClient, key, token string) error {
	return release.Run(ctx, rdb, []string{key}, token).Err()
}

// Package redisscan lists Redis keys by pattern with SCAN, each key once: SCAN may return
// a key more than once (while Redis rehashes its table), which double-counts a sum or
// upserts a row twice.
package redisscan

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Keys returns the keys matching pattern, without duplicates, in SCAN's order.
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	seen := map[string]bool{}
	var keys []string
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		if k := iter.Val(); !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys, iter.Err()
}

// Package follow keeps a process's cache of another service's state in step: it runs a
// sync every interval, logging once when syncs start failing (the cache keeps its last
// state meanwhile) and once when they work again.
package follow

import (
	"context"
	"log/slog"
	"time"
)

// Run calls sync every interval until ctx ends. what names the state in the log lines.
func Run(ctx context.Context, interval time.Duration, log *slog.Logger, what string, sync func(context.Context) error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		err := sync(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			log.WarnContext(ctx, what+" unavailable; keeping the last one", "error", err)
		case err == nil && failing:
			failing = false
			log.InfoContext(ctx, what+" available again")
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

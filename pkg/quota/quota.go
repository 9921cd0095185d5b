// Package quota is the shared layout of the request counters: the gateway counts each
// request in Redis (in the rate limiter's round trip) and the billing service rolls the
// counts up into Postgres and rebuilds them after Redis lost them. Periods are UTC hours,
// days and months.
package quota

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Codes of quotas.
const (
	CodeQuotaExceeded    = "QUOTA_EXCEEDED"
	CodeQuotaUnavailable = "QUOTA_UNAVAILABLE"
)

// Periods.
const (
	Day   = "day"
	Month = "month"
)

// RunCost is what POST /v1/run counts; every other counted request counts 1.
const RunCost = 3

// Formats of the period names in keys and in the API.
const (
	hourFormat  = "2006-01-02T15"
	DayFormat   = "2006-01-02"
	monthFormat = "2006-01"
)

// Keys are a tenant's counters for the periods that hold an instant. One hash tag per
// tenant keeps them in one Redis Cluster slot with the tenant's rate-limit buckets.
type Keys struct {
	Hour, Day, Month string
	// SoftDay and SoftMonth mark a soft cap already reported in the period.
	SoftDay, SoftMonth string
	// Active is the set of tenants counted in the hour (what the rollup reads).
	Active string
	// TTLs keep each key a little past its period.
	HourTTL, DayTTL, MonthTTL time.Duration
}

// KeysAt are tenant's counters at t (any zone; periods are UTC).
func KeysAt(prefix, tenant string, t time.Time) Keys {
	t = t.UTC()
	base := prefix + "quota:{" + tenant + "}:"
	day, month := t.Format(DayFormat), t.Format(monthFormat)
	nextMonth := time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	return Keys{
		Hour: base + "hour:" + t.Format(hourFormat), Day: base + "day:" + day, Month: base + "month:" + month,
		SoftDay: base + "soft:day:" + day, SoftMonth: base + "soft:month:" + month,
		Active:  ActiveKey(prefix, t),
		HourTTL: 3 * time.Hour, DayTTL: 48 * time.Hour, MonthTTL: nextMonth.Sub(t) + 48*time.Hour,
	}
}

// ActiveKey is the set of tenants counted in t's hour.
func ActiveKey(prefix string, t time.Time) string {
	return prefix + "quota:active:" + t.UTC().Format(hourFormat)
}

// EpochKey marks the Redis the counters live in: when it is missing, Redis lost its
// data and the rollup rebuilds the counters from Postgres.
func EpochKey(prefix string) string { return prefix + "quota:epoch" }

// HourStart, DayStart and MonthStart are the UTC periods holding t.
func HourStart(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

func DayStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Used are a tenant's counts in the periods holding an instant.
type Used struct{ Hour, Day, Month int64 }

// Read returns the counters of tenant at t (0 for a counter Redis does not hold).
func Read(ctx context.Context, rdb redis.Cmdable, prefix, tenant string, t time.Time) (Used, error) {
	k := KeysAt(prefix, tenant, t)
	vals, err := rdb.MGet(ctx, k.Hour, k.Day, k.Month).Result()
	if err != nil {
		return Used{}, fmt.Errorf("read quota counters: %w", err)
	}
	var n [3]int64
	for i, v := range vals {
		if s, ok := v.(string); ok {
			n[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return Used{Hour: n[0], Day: n[1], Month: n[2]}, nil
}

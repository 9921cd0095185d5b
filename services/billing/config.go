package billing

import (
	"fmt"
	"strings"
	"time"
)

// Config is the billing service's configuration, parsed from the environment.
type Config struct {
	// DefaultPlanID is the plan of a tenant that has none of its own.
	DefaultPlanID string `env:"DEFAULT_PLAN_ID" envDefault:"free"`
	// UsageRollupInterval is how often the request counters are copied from Redis into
	// Postgres: the most counting a Redis loss can cost.
	UsageRollupInterval time.Duration `env:"USAGE_ROLLUP_INTERVAL" envDefault:"1m"`
	// UsageRetentionDays bounds the hourly counts kept in Postgres.
	UsageRetentionDays int `env:"USAGE_COUNTER_RETENTION_DAYS" envDefault:"400"`
	// Webhook is where billing events are sent.
	Webhook WebhookConfig
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	if _, ok := planByID(c.DefaultPlanID); !ok {
		return fmt.Errorf("DEFAULT_PLAN_ID: %q is not a plan (%s)", c.DefaultPlanID, strings.Join(PlanIDs(), ", "))
	}
	switch {
	case c.UsageRollupInterval < time.Second || c.UsageRollupInterval > time.Hour:
		return fmt.Errorf("USAGE_ROLLUP_INTERVAL: %s is outside 1s..1h", c.UsageRollupInterval)
	case c.UsageRetentionDays < 35:
		return fmt.Errorf("USAGE_COUNTER_RETENTION_DAYS: %d is below 35 (the current and the previous month must stay)", c.UsageRetentionDays)
	}
	return c.Webhook.Validate()
}

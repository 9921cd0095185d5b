package billing

import (
	"fmt"
	"strings"
)

// Config is the billing service's configuration, parsed from the environment.
type Config struct {
	// DefaultPlanID is the plan of a tenant that has none of its own.
	DefaultPlanID string `env:"DEFAULT_PLAN_ID" envDefault:"free"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	if _, ok := planByID(c.DefaultPlanID); !ok {
		return fmt.Errorf("DEFAULT_PLAN_ID: %q is not a plan (%s)", c.DefaultPlanID, strings.Join(PlanIDs(), ", "))
	}
	return nil
}

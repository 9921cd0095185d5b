package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/gateway"
)

// planCmd is the operator's view of tenants' plans: it calls the billing service in this
// process (or at BILLING_GRPC_ADDR) as the tenant's admin, so the rules, the audit
// events and the answer are those of PATCH /v1/admin/plans/{tenant_id}.
func planCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "Show or assign a tenant's plan (operator tool)"}
	var tenant, planID string
	set := &cobra.Command{
		Use:   "set --tenant T --plan free|pro|enterprise",
		Short: "Assign a plan to a tenant",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withBilling(cmd.Context(), tenant, func(ctx context.Context, c billingv1.BillingServiceClient) error {
				res, err := c.SetTenantPlan(ctx, &billingv1.SetTenantPlanRequest{TenantId: tenant, PlanId: planID})
				if err != nil {
					return err
				}
				printPlan(res.GetPlan())
				return nil
			})
		},
	}
	set.Flags().StringVar(&tenant, "tenant", "", "tenant id")
	set.Flags().StringVar(&planID, "plan", "", "plan id: free, pro or enterprise")
	show := &cobra.Command{
		Use:   "show --tenant T",
		Short: "Print a tenant's plan and its features",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withBilling(cmd.Context(), tenant, func(ctx context.Context, c billingv1.BillingServiceClient) error {
				res, err := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: tenant})
				if err != nil {
					return err
				}
				printPlan(res.GetPlan())
				return nil
			})
		},
	}
	show.Flags().StringVar(&tenant, "tenant", "", "tenant id")
	cmd.AddCommand(set, show)
	return cmd
}

func withBilling(ctx context.Context, tenant string, fn func(context.Context, billingv1.BillingServiceClient) error) error {
	if !gateway.ValidTenantID(tenant) {
		return fmt.Errorf("--tenant: %q is not a valid tenant id (letters, digits, _ . -; at most 64)", tenant)
	}
	a, err := openApp(ctx, "billing")
	if err != nil {
		return fmt.Errorf("%w (did you run `nexusrag migrate`?)", err)
	}
	conn, err := a.conn("billing")
	if err != nil {
		return errors.Join(err, a.stop())
	}
	as := principal.With(ctx, principal.Principal{TenantID: tenant, KeyID: "cli:" + cliActor(), Role: apiv1.Role_ROLE_ADMIN})
	runErr := fn(as, billingv1.NewBillingServiceClient(conn))
	return errors.Join(runErr, a.stop()) // stop flushes the audit events
}

func printPlan(p *billingv1.TenantPlan) {
	source := "assigned"
	if !p.GetAssigned() {
		source = "default (DEFAULT_PLAN_ID)"
	}
	fmt.Printf("tenant_id: %s\nplan_id:   %s (%s)\nfeatures:\n", p.GetTenantId(), p.GetPlanId(), source)
	for _, f := range p.GetFeatures() {
		mark := "no "
		if f.GetEnabled() {
			mark = "yes"
		}
		fmt.Printf("  %s  %s%s\n", mark, f.GetFeatureKey(), map[bool]string{true: "  (override)"}[f.GetSource() == "override"])
	}
}

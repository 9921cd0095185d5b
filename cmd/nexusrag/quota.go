package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
)

// quotaCmd is the operator's view of tenants' request quotas; like plan, it calls the
// billing service as the tenant's admin, so the rules and audit events are those of
// PATCH /v1/admin/quotas/{tenant_id}.
func quotaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "quota", Short: "Show or set a tenant's request quotas (operator tool)"}
	var tenant string
	var daily, monthly int64
	var ratio float64
	var hardCap bool
	set := &cobra.Command{
		Use:   "set --tenant T [--daily N] [--monthly N] [--soft-cap-ratio R] [--hard-cap=true|false]",
		Short: "Set a tenant's own quotas (the flags given; the rest stay)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &billingv1.UpdateQuotaRequest{TenantId: tenant}
			if cmd.Flags().Changed("daily") {
				req.DailyRequestsLimit = &daily
			}
			if cmd.Flags().Changed("monthly") {
				req.MonthlyRequestsLimit = &monthly
			}
			if cmd.Flags().Changed("soft-cap-ratio") {
				req.SoftCapRatio = &ratio
			}
			if cmd.Flags().Changed("hard-cap") {
				req.HardCapEnabled = &hardCap
			}
			return withBilling(cmd.Context(), tenant, func(ctx context.Context, c billingv1.BillingServiceClient) error {
				res, err := c.UpdateQuota(ctx, req)
				if err != nil {
					return err
				}
				printQuota(res.GetQuota())
				return nil
			})
		},
	}
	set.Flags().StringVar(&tenant, "tenant", "", "tenant id")
	set.Flags().Int64Var(&daily, "daily", 0, "requests per UTC day (run counts 3)")
	set.Flags().Int64Var(&monthly, "monthly", 0, "requests per UTC month")
	set.Flags().Float64Var(&ratio, "soft-cap-ratio", 0, "share of a limit at which the soft cap is reached (above 0, at most 1)")
	set.Flags().BoolVar(&hardCap, "hard-cap", true, "refuse requests past a limit (402) rather than observe them")
	show := &cobra.Command{
		Use:   "show --tenant T",
		Short: "Print a tenant's quotas and what it used today and this month",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withBilling(cmd.Context(), tenant, func(ctx context.Context, c billingv1.BillingServiceClient) error {
				res, err := c.GetQuota(ctx, &billingv1.GetQuotaRequest{TenantId: tenant})
				if err != nil {
					return err
				}
				printQuota(res.GetQuota())
				return nil
			})
		},
	}
	show.Flags().StringVar(&tenant, "tenant", "", "tenant id")
	cmd.AddCommand(set, show)
	return cmd
}

func printQuota(s *billingv1.QuotaSettings) {
	q := s.GetQuota()
	fmt.Printf("tenant_id:      %s\nsource:         %s\ndaily limit:    %d (used %d)\nmonthly limit:  %d (used %d)\nsoft cap ratio: %g\nhard cap:       %s\n",
		s.GetTenantId(), s.GetSource(), q.GetDailyRequestsLimit(), s.GetDayUsed(), q.GetMonthlyRequestsLimit(), s.GetMonthUsed(),
		q.GetSoftCapRatio(), hardCapMode(q))
}

func hardCapMode(q *billingv1.Quota) string {
	if q.GetHardCapEnabled() {
		return "enforce"
	}
	return "observe (past a limit: allowed, audited)"
}

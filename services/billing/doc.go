// Package billing is the billing service: it owns tenants' plans and feature overrides
// (schema billing) and answers what each tenant is entitled to (BillingService).
//
// Where things are: server.go (BillingService), plans.go (the plans and what each
// grants), store.go, config.go, migrations/. The checks themselves run in every process,
// in pkg/entitlements' cache, fed by GetEntitlements and ListEntitlementChanges.
package billing

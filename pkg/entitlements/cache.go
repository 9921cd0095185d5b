package entitlements

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/follow"
)

// Cache is a process's Checker, and the gateway's source of request quotas: the
// entitlements of the tenants it has seen, kept up to
// date by Run. A tenant's first check asks the billing service; later ones are map
// lookups. While billing is unreachable the known tenants keep their entitlements and a
// new tenant's check fails with billing's error.
type Cache struct {
	client billingv1.BillingServiceClient
	log    *slog.Logger
	group  singleflight.Group

	mu      sync.RWMutex
	tenants map[string]entry
	// revision is how far Run has followed billing's changes; a fetch that overlaps a
	// change is answered but not kept (the change may be newer than what it read).
	revision    int64
	started     bool // Sync has answered once
	defaultPlan string
}

type entry struct {
	features map[string]bool
	quota    *billingv1.Quota
	revision int64
}

// NewCache is a cache over the billing service; call Run to follow its changes.
func NewCache(client billingv1.BillingServiceClient, log *slog.Logger) *Cache {
	return &Cache{client: client, log: log, tenants: map[string]entry{}}
}

// Quota returns the tenant's request quotas.
func (c *Cache) Quota(ctx context.Context, tenant string) (*billingv1.Quota, error) {
	e, err := c.get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return e.quota, nil
}

// Require implements Checker.
func (c *Cache) Require(ctx context.Context, tenant, feature string) error {
	e, err := c.get(ctx, tenant)
	if err != nil {
		return err
	}
	if !e.features[feature] {
		return NotEnabled(feature)
	}
	return nil
}

func (c *Cache) get(ctx context.Context, tenant string) (entry, error) {
	c.mu.RLock()
	e, ok := c.tenants[tenant]
	start := c.revision
	c.mu.RUnlock()
	if ok {
		return e, nil
	}
	v, err, _ := c.group.Do(tenant, func() (any, error) {
		res, err := c.client.GetEntitlements(context.WithoutCancel(ctx), &billingv1.GetEntitlementsRequest{TenantId: tenant})
		if err != nil {
			return entry{}, err
		}
		e := toEntry(res.GetEntitlements())
		c.mu.Lock()
		if c.revision == start { // no change was applied while we read
			c.tenants[tenant] = e
		}
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return entry{}, fmt.Errorf("entitlements of tenant %s: %w", tenant, err)
	}
	return v.(entry), nil
}

func toEntry(e *billingv1.Entitlements) entry {
	out := entry{features: make(map[string]bool, len(e.GetFeatures())), quota: e.GetQuota(), revision: e.GetRevision()}
	for _, f := range e.GetFeatures() {
		out.features[f] = true
	}
	return out
}

// Run follows billing's changes every interval until ctx ends: each changed tenant the
// cache holds is replaced; a change of the default plan (billing restarted with another
// DEFAULT_PLAN_ID) empties the cache.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	follow.Run(ctx, interval, c.log, "entitlement changes (known tenants keep theirs)", c.Sync)
}

// Sync applies the changes billing has after the cache's revision.
func (c *Cache) Sync(ctx context.Context) error {
	for {
		c.mu.RLock()
		after, started := c.revision, c.started
		c.mu.RUnlock()
		res, err := c.client.ListEntitlementChanges(ctx, &billingv1.ListEntitlementChangesRequest{AfterRevision: after, CurrentOnly: !started})
		if err != nil {
			return err
		}
		c.mu.Lock()
		if res.GetDefaultPlanId() != c.defaultPlan || res.GetRevision() < c.revision {
			// Another default plan, or a billing database that went back in time: forget everything.
			c.tenants, c.defaultPlan = map[string]entry{}, res.GetDefaultPlanId()
		}
		for _, ch := range res.GetChanged() {
			if old, ok := c.tenants[ch.GetTenantId()]; ok && ch.GetRevision() > old.revision {
				c.tenants[ch.GetTenantId()] = toEntry(ch)
			}
		}
		c.revision, c.started = res.GetRevision(), true
		c.mu.Unlock()
		if !res.GetMore() {
			return nil
		}
	}
}

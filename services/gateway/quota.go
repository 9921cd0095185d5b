package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/quota"
)

// quotaHeaders describe the tenant's quotas after an admitted request.
func (l *RateLimiter) quotaHeaders(h http.Header, d Decision) {
	q := d.Quota
	set := func(name string, n int64) { h.Set(name, strconv.FormatInt(n, 10)) }
	set("X-Quota-Day-Limit", q.GetDailyRequestsLimit())
	set("X-Quota-Day-Used", d.DayUsed)
	set("X-Quota-Day-Remaining", max(0, q.GetDailyRequestsLimit()-d.DayUsed))
	set("X-Quota-Month-Limit", q.GetMonthlyRequestsLimit())
	set("X-Quota-Month-Used", d.MonthUsed)
	set("X-Quota-Month-Remaining", max(0, q.GetMonthlyRequestsLimit()-d.MonthUsed))
	soft := float64(d.DayUsed) >= q.GetSoftCapRatio()*float64(q.GetDailyRequestsLimit()) ||
		float64(d.MonthUsed) >= q.GetSoftCapRatio()*float64(q.GetMonthlyRequestsLimit())
	h.Set("X-Quota-SoftCap-Reached", strconv.FormatBool(soft))
	h.Set("X-Quota-HardCap-Mode", hardCapMode(q))
}

func hardCapMode(q *billingv1.Quota) string {
	if q.GetHardCapEnabled() {
		return "enforce"
	}
	return "observe"
}

// quotaEvents reports the soft caps this request crossed first (to billing: audited and
// sent as a webhook) and, in observe mode, an overage (audited, sampled).
func (l *RateLimiter) quotaEvents(ctx context.Context, tenant string, d Decision) {
	q := d.Quota
	now := l.o.Now().UTC()
	for _, c := range []struct {
		crossed     bool
		period      string
		used, limit int64
		start       time.Time
	}{
		{d.SoftDay, quota.Day, d.DayUsed, q.GetDailyRequestsLimit(), quota.DayStart(now)},
		{d.SoftMonth, quota.Month, d.MonthUsed, q.GetMonthlyRequestsLimit(), quota.MonthStart(now)},
	} {
		if c.crossed {
			l.reportSoftCap(ctx, tenant, c.period, c.start, c.used, c.limit)
		}
		if !q.GetHardCapEnabled() && c.used > c.limit {
			if ok, suppressed := l.refused.Allow("overage/"+tenant+"/"+c.period, time.Now()); ok {
				l.audit.Record(ctx, audit.Event{Type: audit.TypeQuotaOverageObserved, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: tenant,
					Metadata: map[string]any{"period": c.period, "used": c.used, "limit": c.limit, "suppressed": suppressed}})
			}
		}
	}
}

// reportSoftCap tells billing, off the request path. The crossing is marked in Redis
// once per period; when billing cannot be told, the mark is removed so that the next
// request reports it again.
func (l *RateLimiter) reportSoftCap(ctx context.Context, tenant, period string, start time.Time, used, limit int64) {
	if l.o.Reports == nil {
		l.log.InfoContext(ctx, "soft quota cap reached", "tenant_id", tenant, "period", period, "used", used, "limit", limit)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	go func() {
		defer cancel()
		_, err := l.o.Reports.ReportQuotaEvent(rctx, &billingv1.ReportQuotaEventRequest{TenantId: tenant, EventType: audit.TypeQuotaSoftCapReached,
			Period: period, PeriodStart: start.Format(quota.DayFormat), Used: used, Limit: limit})
		if err == nil {
			return
		}
		l.log.WarnContext(rctx, "could not report a soft quota cap to billing; the next request reports it again", "tenant_id", tenant, "period", period, "error", err)
		k := quota.KeysAt(l.prefix, tenant, start)
		mark := k.SoftDay
		if period == quota.Month {
			mark = k.SoftMonth
		}
		_ = l.rdb.Del(rctx, mark).Err()
	}()
}

// overQuota answers 402 in the documented shape.
func (l *RateLimiter) overQuota(w http.ResponseWriter, r *http.Request, p principal.Principal, d Decision) {
	q, used, limit, name := d.Quota, d.MonthUsed, d.Quota.GetMonthlyRequestsLimit(), "Monthly"
	if d.OverQuota == quota.Day {
		used, limit, name = d.DayUsed, q.GetDailyRequestsLimit(), "Daily"
	}
	l.quotaHeaders(w.Header(), d)
	writeJSON(w, http.StatusPaymentRequired, map[string]any{"detail": map[string]any{
		"code": quota.CodeQuotaExceeded, "message": name + " request quota exceeded",
		"period": d.OverQuota, "limit": limit, "used": used, "remaining": max(0, limit-used),
	}})
	if ok, suppressed := l.refused.Allow("blocked/"+p.TenantID+"/"+d.OverQuota, time.Now()); ok {
		l.audit.Record(r.Context(), audit.Event{Type: audit.TypeQuotaHardCapBlocked, Outcome: audit.OutcomeFailure, ResourceType: "route",
			ResourceID: r.Method + " " + stateOf(r.Context()).route,
			Metadata:   map[string]any{"period": d.OverQuota, "used": used, "limit": limit, "suppressed": suppressed}})
	}
}

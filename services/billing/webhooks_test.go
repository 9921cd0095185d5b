package billing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/logging/logtest"
	"github.com/nexusrag/nexusrag/services/billing"
)

const testSecret = "whsec-0123456789-do-not-leak"

// delivery is one request the receiver got.
type delivery struct {
	event, signature string
	body             []byte
}

// receiver is a webhook endpoint whose answers the test scripts: one behaviour per
// request, in order, then 200.
type receiver struct {
	mu       sync.Mutex
	script   []string // "500", "400", "hang", "200"
	got      []delivery
	srv      *httptest.Server
	received chan struct{}
}

func newReceiver(t *testing.T, script ...string) *receiver {
	r := &receiver{script: script, received: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.Header.Get(billing.HeaderEvent), req.Header.Get(billing.HeaderSignature), body})
		next := "200"
		if len(r.script) > 0 {
			next, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		r.received <- struct{}{}
		switch next {
		case "hang":
			<-req.Context().Done() // until the sender gives up
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
		case "400":
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// opensslHMAC is hex(HMAC-SHA256(secret, body)) as openssl computes it: the signature is
// checked by an implementation that is not the code under test.
func opensslHMAC(t *testing.T, secret string, body []byte) string {
	t.Helper()
	cmd := exec.Command("openssl", "dgst", "-sha256", "-hmac", secret)
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.Output()
	require.NoError(t, err, "openssl (scripts/deps.sh installs it)")
	_, sum, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
	require.True(t, ok, "openssl output: %s", out)
	return sum
}

func webhookConfig(url string) billing.WebhookConfig {
	return billing.WebhookConfig{Enabled: true, URL: url, Secret: testSecret, TimeoutMS: 300, MaxAttempts: 4,
		RetryBase: 10 * time.Millisecond, RetryMax: 20 * time.Millisecond, PollInterval: 10 * time.Millisecond}
}

type outboxRow struct {
	state     string
	attempts  int
	lastError *string
}

func (h *usageHarness) outbox(t *testing.T, eventID string) outboxRow {
	t.Helper()
	var r outboxRow
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT state, attempts, last_error FROM billing.webhook_outbox WHERE event_id = $1`, eventID).
		Scan(&r.state, &r.attempts, &r.lastError))
	return r
}

// deliverUntil calls DeliverDue until done holds (the backoff is milliseconds).
func deliverUntil(t *testing.T, d *billing.Dispatcher, done func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, err := d.DeliverDue(context.Background())
		require.NoError(t, err)
		return done()
	}, 10*time.Second, 5*time.Millisecond)
}

// A receiver that fails, then hangs past the timeout, then answers: the event arrives
// on the third attempt, the same bytes each time, signed and typed.
func TestWebhookDeliveryRetriesUntilTheReceiverAnswers(t *testing.T) {
	rcv := newReceiver(t, "500", "hang", "200")
	cfg := billing.Config{DefaultPlanID: "free", Webhook: webhookConfig(rcv.srv.URL)}
	h := newHarness(t, time.Now(), cfg, logging.Discard())
	d := billing.NewDispatcher(h.store, cfg.Webhook, nil, h.rec, logging.Discard())

	_, err := h.client.SetTenantPlan(admin("t1"), &billingv1.SetTenantPlanRequest{TenantId: "t1", PlanId: "pro"})
	require.NoError(t, err)
	var id string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT event_id::text FROM billing.webhook_outbox WHERE event_type = 'plan.changed'`).Scan(&id),
		"the change wrote its event in its own transaction")
	deliverUntil(t, d, func() bool { return h.outbox(t, id).state == "delivered" })

	got := rcv.deliveries()
	require.Len(t, got, 3, "500, a hang, then 200")
	for _, g := range got {
		require.Equal(t, got[0].body, g.body, "every attempt sends the same event")
		require.Equal(t, "plan.changed", g.event)
		require.Equal(t, opensslHMAC(t, testSecret, g.body), g.signature)
	}
	var body map[string]any
	require.NoError(t, json.Unmarshal(got[0].body, &body))
	require.Equal(t, id, body["id"])
	require.Equal(t, "plan.changed", body["type"])
	require.Equal(t, "t1", body["tenant_id"])
	require.Equal(t, map[string]any{"plan_id": "pro", "previous_plan_id": "free"}, body["data"])
	row := h.outbox(t, id)
	require.Equal(t, 3, row.attempts)
	require.Nil(t, row.lastError)
}

// After the last attempt the event is a dead letter, audited; the secret appears in no
// log line, audit row or stored error, and neither does a token in the URL.
func TestWebhookDeadLetterKeepsTheSecret(t *testing.T) {
	rcv := newReceiver(t, "400", "500", "400", "500", "400")
	logs := &logtest.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := billing.Config{DefaultPlanID: "free", Webhook: webhookConfig(rcv.srv.URL + "/hook?token=url-token-do-not-leak")}
	cfg.Webhook.MaxAttempts = 2
	h := newHarness(t, time.Now(), cfg, log)
	d := billing.NewDispatcher(h.store, cfg.Webhook, nil, h.rec, log)

	_, err := h.client.UpdateQuota(admin("t1"), &billingv1.UpdateQuotaRequest{TenantId: "t1", DailyRequestsLimit: proto.Int64(50)})
	require.NoError(t, err)
	var id string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT event_id::text FROM billing.webhook_outbox WHERE event_type = 'quota.changed'`).Scan(&id))
	deliverUntil(t, d, func() bool { return h.outbox(t, id).state == "dead" })
	row := h.outbox(t, id)
	require.Equal(t, 2, row.attempts)
	require.Equal(t, "the webhook receiver answered 500", *row.lastError)
	require.Len(t, rcv.deliveries(), 2)
	require.Equal(t, 1, h.rec.Count(audit.TypeWebhookFailure))

	// Nothing more is sent for a dead letter.
	n, err := d.DeliverDue(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)

	var everything strings.Builder
	everything.WriteString(logs.String())
	for _, e := range h.rec.Events() {
		b, _ := json.Marshal(e)
		everything.Write(b)
	}
	var stored string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT string_agg(coalesce(last_error, '') || convert_from(body, 'UTF8'), ' ') FROM billing.webhook_outbox`).Scan(&stored))
	everything.WriteString(stored)
	require.Contains(t, everything.String(), "dead letter", "the logs were captured")
	for _, secret := range []string{testSecret, "url-token-do-not-leak"} {
		require.NotContains(t, everything.String(), secret)
	}

	bad := cfg.Webhook
	bad.URL = "ftp://" + testSecret
	require.NotContains(t, bad.Validate().Error(), testSecret)
	bad = cfg.Webhook
	bad.Secret = "short"
	require.ErrorContains(t, bad.Validate(), "BILLING_WEBHOOK_SECRET")
	require.NotContains(t, bad.Validate().Error(), "short")
}

// A soft cap is one event per tenant and period, however often the gateway reports it;
// with webhooks off, events are kept as unsent and never delivered.
func TestSoftCapIsOneEventPerPeriod(t *testing.T) {
	h := newUsageHarness(t, time.Now())
	report := &billingv1.ReportQuotaEventRequest{TenantId: "t1", EventType: audit.TypeQuotaSoftCapReached,
		Period: "day", PeriodStart: "2026-11-29", Used: 800, Limit: 1000}
	for range 3 {
		_, err := h.client.ReportQuotaEvent(context.Background(), report)
		require.NoError(t, err)
	}
	report.PeriodStart = "2026-11-30"
	_, err := h.client.ReportQuotaEvent(context.Background(), report)
	require.NoError(t, err)
	require.Equal(t, 2, h.rec.Count(audit.TypeQuotaSoftCapReached), "one per period")
	var states []string
	rows, err := h.pool.Query(context.Background(), `SELECT state FROM billing.webhook_outbox ORDER BY created_at`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		states = append(states, s)
	}
	require.Equal(t, []string{"unsent", "unsent"}, states)
}

package billing

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/extcall"
)

// Webhook headers: the event type, and hex(HMAC-SHA256(secret, raw body)).
const (
	HeaderSignature = "X-Billing-Signature"
	HeaderEvent     = "X-Billing-Event"
)

// Webhook event types beyond the audit taxonomy's (which the others reuse).
const (
	EventWebhookTest = "billing.webhook_test"
)

// Codes of webhook failures: webhooks are off (a webhook test), the receiver could not
// be reached or answered 5xx/408/429 (retried), or it answered another non-2xx.
const (
	CodeWebhookNotConfigured = "WEBHOOK_NOT_CONFIGURED"
	CodeReceiverUnavailable  = "WEBHOOK_RECEIVER_UNAVAILABLE"
	CodeReceiverRefused      = "WEBHOOK_RECEIVER_REFUSED"
)

// finishedRetention is how long delivered and unsent events stay in the outbox; dead
// letters stay until an operator deals with them.
const finishedRetention = 30 * 24 * time.Hour

// WebhookConfig is where billing events are sent and how.
type WebhookConfig struct {
	Enabled bool   `env:"BILLING_WEBHOOK_ENABLED" envDefault:"false"`
	URL     string `env:"BILLING_WEBHOOK_URL"`
	// Secret signs every body. It is never logged, audited or put in an error.
	Secret    string `env:"BILLING_WEBHOOK_SECRET"`
	TimeoutMS int    `env:"BILLING_WEBHOOK_TIMEOUT_MS" envDefault:"5000"`
	// MaxAttempts is the most deliveries of one event before it becomes a dead letter.
	MaxAttempts int `env:"BILLING_WEBHOOK_MAX_ATTEMPTS" envDefault:"8"`
	// RetryBase and RetryMax bound the exponential wait between attempts (with jitter).
	RetryBase    time.Duration `env:"BILLING_WEBHOOK_RETRY_BASE" envDefault:"2s"`
	RetryMax     time.Duration `env:"BILLING_WEBHOOK_RETRY_MAX" envDefault:"10m"`
	PollInterval time.Duration `env:"BILLING_WEBHOOK_POLL_INTERVAL" envDefault:"1s"`
}

// Validate checks rules beyond types; no message repeats the URL or the secret.
func (c *WebhookConfig) Validate() error {
	if !c.Enabled {
		return nil
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("BILLING_WEBHOOK_URL: must be an http:// or https:// URL when BILLING_WEBHOOK_ENABLED=true")
	case len(c.Secret) < 16:
		return errors.New("BILLING_WEBHOOK_SECRET: must be at least 16 characters when BILLING_WEBHOOK_ENABLED=true")
	case c.TimeoutMS < 1 || c.TimeoutMS > 60_000:
		return fmt.Errorf("BILLING_WEBHOOK_TIMEOUT_MS: %d is outside 1..60000", c.TimeoutMS)
	case c.MaxAttempts < 1 || c.MaxAttempts > 50:
		return fmt.Errorf("BILLING_WEBHOOK_MAX_ATTEMPTS: %d is outside 1..50", c.MaxAttempts)
	case c.RetryBase < 10*time.Millisecond || c.RetryMax < c.RetryBase:
		return errors.New("BILLING_WEBHOOK_RETRY_BASE / BILLING_WEBHOOK_RETRY_MAX: want 10ms <= base <= max")
	case c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute:
		return fmt.Errorf("BILLING_WEBHOOK_POLL_INTERVAL: %s is outside 10ms..1m", c.PollInterval)
	}
	return nil
}

func (c WebhookConfig) timeout() time.Duration { return time.Duration(c.TimeoutMS) * time.Millisecond }

// Sign is the X-Billing-Signature of body: hex(HMAC-SHA256(secret, body)).
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// outboxEvent is one webhook event: body is what is signed and sent, every time.
type outboxEvent struct {
	id, tenant, eventType string
	body                  []byte
	dedupKey              *string // one event per key, ever
	state                 string  // pending, or unsent while webhooks are off
}

// newEvent builds the body {"id", "type", "tenant_id", "created_at", "data"}; receivers
// drop duplicates by id.
func newEvent(eventType, tenant string, data map[string]any, enabled bool) outboxEvent {
	id := uuid.NewString()
	body, _ := json.Marshal(struct {
		ID        string         `json:"id"`
		Type      string         `json:"type"`
		TenantID  string         `json:"tenant_id"`
		CreatedAt string         `json:"created_at"`
		Data      map[string]any `json:"data"`
	}{id, eventType, tenant, time.Now().UTC().Format(time.RFC3339Nano), data})
	state := "pending"
	if !enabled {
		state = "unsent"
	}
	return outboxEvent{id: id, tenant: tenant, eventType: eventType, body: body, state: state}
}

// Dispatcher delivers the outbox's pending events: each attempt under the external-call
// policy (BILLING_WEBHOOK_TIMEOUT_MS, the shared "billing-webhook" breaker); failed
// attempts are retried later with exponential backoff and jitter, durably, since the
// schedule is in the outbox; after MaxAttempts the event is a dead letter, audited. A
// process that dies mid-delivery leaves a lease that expires, and the event is sent again
// with the same id and body.
type Dispatcher struct {
	store *Store
	cfg   WebhookConfig
	calls *extcall.Client
	http  *http.Client
	audit Recorder
	log   *slog.Logger
}

// NewDispatcher returns the dispatcher of cfg's webhook; calls carries the breaker (its
// policy's timeout and retries are replaced by the webhook's own).
func NewDispatcher(store *Store, cfg WebhookConfig, b *breaker.Breaker, rec Recorder, log *slog.Logger) *Dispatcher {
	calls := extcall.New("billing-webhook", extcall.Policy{Timeout: cfg.timeout(), Attempts: 1}, b)
	return &Dispatcher{store: store, cfg: cfg, calls: calls, http: &http.Client{}, audit: rec, log: log}
}

// batch is the most events one poll delivers (concurrently).
const batch = 16

// Run delivers due events every PollInterval until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	tick := time.NewTicker(d.cfg.PollInterval)
	defer tick.Stop()
	for {
		for {
			n, err := d.DeliverDue(ctx)
			if err != nil && ctx.Err() == nil {
				d.log.WarnContext(ctx, "billing webhooks: could not read the outbox; retrying", "error", err)
			}
			if n < batch || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// lease is how long a claimed event is the claimer's: one attempt and its bookkeeping.
func (d *Dispatcher) lease() time.Duration { return 2*d.cfg.timeout() + time.Second }

// DeliverDue claims the due events (at most batch) and makes one attempt at each; it
// returns how many it claimed.
func (d *Dispatcher) DeliverDue(ctx context.Context) (int, error) {
	claimed, err := d.store.claimWebhooks(ctx, d.lease(), batch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	for _, ev := range claimed {
		wg.Go(func() { d.attempt(ctx, ev) })
	}
	wg.Wait()
	return len(claimed), nil
}

func (d *Dispatcher) attempt(ctx context.Context, ev claimedEvent) {
	_, sendErr := d.Send(ctx, ev.eventType, ev.body)
	// The outcome is written even when ctx ends now: the delivery happened or not.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var e *apierr.Error
	var err error
	switch {
	case sendErr == nil:
		err = d.store.webhookDelivered(wctx, ev.id)
	case ctx.Err() != nil:
		return // shutting down: the lease runs out and the event is sent again
	case errors.As(sendErr, &e) && e.Code == breaker.CodeCircuitOpen:
		// Not an attempt: the receiver was not called.
		err = d.store.webhookReleased(wctx, ev.id, time.Now().Add(d.backoff(ev.attempts)))
	case ev.attempts >= d.cfg.MaxAttempts:
		why := describe(sendErr)
		if err = d.store.webhookFailed(wctx, ev.id, why, time.Time{}, true); err == nil {
			d.log.WarnContext(ctx, "billing webhook failed its last attempt; kept as a dead letter",
				"event_id", ev.id, "event_type", ev.eventType, "tenant_id", ev.tenant, "attempts", ev.attempts, "error", why)
			d.audit.Record(ctx, audit.Event{Type: audit.TypeWebhookFailure, Outcome: audit.OutcomeFailure, TenantID: ev.tenant,
				ActorType: audit.ActorSystem, ResourceType: "billing_webhook_event", ResourceID: ev.id,
				Metadata: map[string]any{"event_type": ev.eventType, "attempts": ev.attempts, "error": why}})
		}
	default:
		err = d.store.webhookFailed(wctx, ev.id, describe(sendErr), time.Now().Add(d.backoff(ev.attempts)), false)
	}
	if err != nil {
		d.log.WarnContext(ctx, "billing webhooks: could not record a delivery's outcome; the event is sent again", "event_id", ev.id, "error", err)
	}
}

// backoff is the wait after the attempts-th failure: RetryBase doubled per attempt, at
// most RetryMax, ±20 % jitter.
func (d *Dispatcher) backoff(attempts int) time.Duration {
	wait := d.cfg.RetryMax
	if attempts < 40 {
		wait = min(d.cfg.RetryMax, d.cfg.RetryBase<<max(0, attempts-1))
	}
	return time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
}

// Send makes one signed POST of body to the webhook: nil on a 2xx answer; the status
// code of any answer.
func (d *Dispatcher) Send(ctx context.Context, eventType string, body []byte) (status int, err error) {
	err = d.calls.Do(ctx, false, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
		if err != nil {
			return extcall.Permanent(apierr.New(codes.FailedPrecondition, CodeWebhookNotConfigured, "the billing webhook URL is not usable"))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(HeaderEvent, eventType)
		req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, body))
		res, err := d.http.Do(req)
		if err != nil {
			var ue *url.Error // its message holds the URL, which may hold a token
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return apierr.New(codes.Unavailable, CodeReceiverUnavailable, "could not reach the webhook receiver: "+err.Error())
		}
		defer res.Body.Close()
		status = res.StatusCode
		switch {
		case status >= 200 && status < 300:
			return nil
		case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
			return apierr.New(codes.Unavailable, CodeReceiverUnavailable, fmt.Sprintf("the webhook receiver answered %d", status))
		}
		return apierr.New(codes.FailedPrecondition, CodeReceiverRefused, fmt.Sprintf("the webhook receiver answered %d", status))
	})
	return status, err
}

// describe is the message of a delivery's failure (no URL, no secret).
func describe(err error) string {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return strings.TrimSpace(err.Error())
}

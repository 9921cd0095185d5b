package main_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kill ends the platform with SIGKILL: no shutdown, no flush, like a crash.
func (p *platform) kill() {
	p.t.Helper()
	p.stopped = true
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.exited
}

// TestWebhookOutboxSurvivesACrash: billing events are written with their change; the
// process is killed while a delivery hangs; after a restart every event arrives, and
// a redelivered event is the same bytes with the same id.
func TestWebhookOutboxSurvivesACrash(t *testing.T) {
	t.Parallel()
	const secret = "whsec-e2e-0123456789-do-not-leak"
	var mu sync.Mutex
	got := map[string][][]byte{} // event id -> bodies received
	hanging := make(chan struct{}, 1)
	first := true
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct{ ID string }
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got[ev.ID] = append(got[ev.ID], body)
		hang := first
		first = false
		mu.Unlock()
		if hang {
			hanging <- struct{}{}
			<-r.Context().Done() // until the sender dies
		}
	}))
	t.Cleanup(rcv.Close)

	env, dbURL := newEnv(t, "BILLING_WEBHOOK_ENABLED=true", "BILLING_WEBHOOK_URL="+rcv.URL, "BILLING_WEBHOOK_SECRET="+secret,
		"BILLING_WEBHOOK_TIMEOUT_MS=2000", "BILLING_WEBHOOK_POLL_INTERVAL=50ms", "BILLING_WEBHOOK_RETRY_BASE=50ms")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	_, key := a.createKey("t-w", "admin")
	for _, c := range []struct{ path, body string }{
		{"/v1/admin/plans/t-w", `{"plan_id": "pro"}`},
		{"/v1/admin/quotas/t-w", `{"daily_requests_limit": 5000}`},
		{"/v1/admin/plans/t-w/overrides", `{"feature_key": "feature.tts", "enabled": false}`},
	} {
		r := a.do(http.MethodPatch, c.path, key, c.body)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	}
	select {
	case <-hanging:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery started")
	}
	a.kill()

	var ids []string
	rows, err := a.DB().Query(context.Background(), `SELECT event_id::text FROM billing.webhook_outbox ORDER BY created_at`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.Len(t, ids, 3, "each change wrote its event")

	// The hung delivery is retried once its lease (2 x timeout + 1 s: 5 s) runs out.
	b := startWithEnv(t, env, dbURL)
	require.Eventually(t, func() bool {
		var pending int
		require.NoError(t, b.DB().QueryRow(context.Background(), `SELECT count(*) FROM billing.webhook_outbox WHERE state <> 'delivered'`).Scan(&pending))
		return pending == 0
	}, 60*time.Second, 100*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	redelivered := 0
	for _, id := range ids {
		require.NotEmpty(t, got[id], "event %s arrived", id)
		for _, body := range got[id][1:] {
			require.Equal(t, string(got[id][0]), string(body), "a redelivery is the same event")
			redelivered++
		}
	}
	require.GreaterOrEqual(t, redelivered, 1, "the delivery cut by the crash was made again")

	for _, p := range []*platform{a, b} {
		require.NotContains(t, p.logs.String(), secret)
	}
	for _, ev := range b.auditEvents(key, "limit=200") {
		raw, _ := json.Marshal(ev)
		require.NotContains(t, string(raw), secret)
	}
}

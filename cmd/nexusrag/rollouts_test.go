package main_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// killSwitchOf is details.kill_switch of an error answer.
func (r response) killSwitchOf() string {
	e, _ := r.JSON["error"].(map[string]any)
	d, _ := e["details"].(map[string]any)
	s, _ := d["kill_switch"].(string)
	return s
}

// TestRolloutControls: a kill switch or canary changed through one replica is enforced
// by the other within 5 s, without a restart; only platform admins change them.
func TestRolloutControls(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t, "PLATFORM_ADMIN_TENANTS=t-op")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	a := startWithEnv(t, env, dbURL)
	b := startWithEnv(t, env, dbURL)
	_, op := a.createKey("t-op", "admin")
	_, tenantAdmin := a.createKey("t-x", "admin")
	_, editor := a.createKey("t-x", "editor")
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/corpora/c1", tenantAdmin, `{"allow_missing": true}`).Status)
	runBody := `{"session_id": "s1", "corpus_id": "c1", "message": "hello"}`

	r := b.do(http.MethodGet, "/v1/admin/rollouts/killswitches", tenantAdmin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, map[string]any{"kill.run": false, "kill.ingest": false, "kill.tts": false, "kill.retrieval.local_pgvector": false,
		"kill.retrieval.aws_bedrock_kb": false, "kill.retrieval.gcp_vertex": false}, r.data()["kill_switches"])
	r = a.do(http.MethodPatch, "/v1/admin/rollouts/killswitches", tenantAdmin, `{"kill_switches": {"kill.run": true}}`)
	require.Equal(t, http.StatusForbidden, r.Status, "a tenant's admin is not the platform's")
	for _, body := range []string{`{"kill_switches": {"kill.everything": true}}`, `{"kill_switches": {}}`} {
		r = a.do(http.MethodPatch, "/v1/admin/rollouts/killswitches", op, body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, "kill_switches", r.fieldOf())
	}

	changed := time.Now()
	r = a.do(http.MethodPatch, "/v1/admin/rollouts/killswitches", op, `{"kill_switches": {"kill.run": true, "kill.ingest": true}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Eventually(t, func() bool {
		r = b.do(http.MethodPost, "/v1/run", editor, runBody)
		return r.Status == http.StatusServiceUnavailable
	}, 5*time.Second, 20*time.Millisecond, "the other replica kills runs within 5 s")
	t.Logf("kill.run enforced by the other replica after %s", time.Since(changed).Round(time.Millisecond))
	require.Equal(t, "FEATURE_KILLED", r.errorCode())
	require.Equal(t, "kill.run", r.killSwitchOf())
	require.Equal(t, "30", r.Header.Get("Retry-After"))
	r = b.do(http.MethodPost, "/v1/documents/text", editor, `{"corpus_id": "c1", "text": "hello", "document_id": "d1"}`)
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r.Body)
	require.Equal(t, "kill.ingest", r.killSwitchOf())
	require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/v1/documents", editor, "").Status, "reads go on")

	r = a.do(http.MethodPatch, "/v1/admin/rollouts/killswitches", op, `{"kill_switches": {"kill.run": false, "kill.ingest": false, "kill.retrieval.local_pgvector": true}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Eventually(t, func() bool {
		r = b.do(http.MethodPost, "/v1/run", editor, runBody)
		return r.killSwitchOf() == "kill.retrieval.local_pgvector"
	}, 5*time.Second, 20*time.Millisecond, "a killed provider refuses its corpora's runs: %s", r.Body)
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/admin/rollouts/killswitches", op, `{"kill_switches": {"kill.retrieval.local_pgvector": false}}`).Status)

	// Canary: 0 % of tenants have speech; t-x asking for it is told so. 100 %: everyone.
	audio := `{"session_id": "s2", "corpus_id": "c1", "message": "hello", "audio": true}`
	r = a.do(http.MethodPatch, "/v1/admin/rollouts/canary", op, `{"canary_percentages": {"rollout.tts": 0}}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.EqualValues(t, 0, r.data()["canary_percentages"].(map[string]any)["rollout.tts"])
	require.Eventually(t, func() bool {
		r = b.do(http.MethodPost, "/v1/run", editor, audio)
		return r.Status == http.StatusForbidden
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "rollout.tts", r.featureKey())
	for _, body := range []string{`{"canary_percentages": {"rollout.tts": 101}}`, `{"canary_percentages": {"rollout.teleport": 5}}`} {
		r = a.do(http.MethodPatch, "/v1/admin/rollouts/canary", op, body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, "canary_percentages", r.fieldOf())
	}
	require.Equal(t, http.StatusOK, a.do(http.MethodPatch, "/v1/admin/rollouts/canary", op, `{"canary_percentages": {"rollout.tts": 100}}`).Status)
	require.Eventually(t, func() bool {
		res := b.send(http.MethodPost, "/v1/run", editor, audio)
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)
	r = b.do(http.MethodGet, "/v1/admin/rollouts/canary", tenantAdmin, "")
	require.EqualValues(t, 100, r.data()["canary_percentages"].(map[string]any)["rollout.tts"])
	require.Eventually(t, func() bool {
		return len(a.auditEvents(op, "event_type=rollout.changed")) >= 5
	}, 5*time.Second, 50*time.Millisecond)
}

package main_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLegalHolds: a held document, or any document of a held tenant, is not deleted
// (409 LEGAL_HOLD_ACTIVE) until the hold is released; holds are the tenant's own.
func TestLegalHolds(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t-h", "admin")
	_, other := p.createKey("t-o", "admin")
	for _, key := range []string{admin, other} {
		require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", key, `{"allow_missing": true}`).Status)
	}
	for _, id := range []string{"d1", "d2"} {
		require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", admin, fmt.Sprintf(`{"corpus_id": "c1", "document_id": %q, "text": "evidence %s"}`, id, id)).Status)
		p.waitDocument(admin, id, "succeeded")
	}
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", other, `{"corpus_id": "c1", "document_id": "d1", "text": "theirs"}`).Status)
	p.waitDocument(other, "d1", "succeeded")

	r := p.do(http.MethodPost, "/v1/admin/governance/legal-holds", admin, `{"scope_type": "document", "scope_id": "d1", "reason": "matter 2026-17"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	hold := r.data()["legal_hold"].(map[string]any)
	require.Equal(t, true, hold["active"])
	r = p.do(http.MethodDelete, "/v1/documents/d1", admin, "")
	require.Equal(t, http.StatusConflict, r.Status, "%s", r.Body)
	require.Equal(t, "LEGAL_HOLD_ACTIVE", r.errorCode())
	r = p.do(http.MethodPost, "/v1/documents/text", admin, `{"corpus_id": "c1", "document_id": "d1", "text": "rewritten", "overwrite": true}`)
	require.Equal(t, http.StatusConflict, r.Status, "replacing destroys the held text: %s", r.Body)
	require.Equal(t, "LEGAL_HOLD_ACTIVE", r.errorCode())
	p.waitDocument(admin, "d1", "succeeded") // untouched
	var text string
	require.NoError(t, p.DB().QueryRow(context.Background(), `SELECT content FROM ingest.documents WHERE tenant_id = 't-h' AND document_id = 'd1'`).Scan(&text))
	require.Equal(t, "evidence d1", text)
	require.Equal(t, http.StatusOK, p.do(http.MethodDelete, "/v1/documents/d1", other, "").Status, "another tenant's d1 is not held")

	// A tenant hold covers every document of the tenant.
	r = p.do(http.MethodPost, "/v1/admin/governance/legal-holds", admin, `{"scope_type": "tenant", "reason": "litigation"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	tenantHold := r.data()["legal_hold"].(map[string]any)
	require.Equal(t, "t-h", tenantHold["scope_id"])
	require.Equal(t, "LEGAL_HOLD_ACTIVE", p.do(http.MethodDelete, "/v1/documents/d2", admin, "").errorCode())

	r = p.do(http.MethodGet, "/v1/admin/governance/legal-holds", admin, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Len(t, r.data()["legal_holds"], 2)
	require.Empty(t, p.do(http.MethodGet, "/v1/admin/governance/legal-holds", other, "").data()["legal_holds"])
	for _, c := range []struct{ body, field string }{
		{`{"scope_type": "planet", "scope_id": "x", "reason": "r"}`, "scope_type"},
		{`{"scope_type": "document", "reason": "r"}`, "scope_id"},
		{`{"scope_type": "document", "scope_id": "d1"}`, "reason"},
	} {
		r = p.do(http.MethodPost, "/v1/admin/governance/legal-holds", admin, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, c.field, r.fieldOf())
	}
	require.Equal(t, http.StatusForbidden, p.do(http.MethodPost, "/v1/admin/governance/legal-holds", admin, `{"scope_type": "tenant", "scope_id": "t-o", "reason": "r"}`).Status)
	r = p.do(http.MethodPost, fmt.Sprintf("/v1/admin/governance/legal-holds/%v/release", tenantHold["hold_id"]), other, "")
	require.Equal(t, http.StatusNotFound, r.Status)
	require.Equal(t, "LEGAL_HOLD_NOT_FOUND", r.errorCode())

	// Released: deletable again (release twice is fine).
	for _, h := range []any{hold["hold_id"], tenantHold["hold_id"], tenantHold["hold_id"]} {
		r = p.do(http.MethodPost, fmt.Sprintf("/v1/admin/governance/legal-holds/%v/release", h), admin, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.Equal(t, false, r.data()["legal_hold"].(map[string]any)["active"])
	}
	require.Equal(t, http.StatusOK, p.do(http.MethodDelete, "/v1/documents/d1", admin, "").Status)
	require.Len(t, p.do(http.MethodGet, "/v1/admin/governance/legal-holds?include_released=true", admin, "").data()["legal_holds"], 2)
	require.Empty(t, p.do(http.MethodGet, "/v1/admin/governance/legal-holds", admin, "").data()["legal_holds"])
}

// TestRetentionPolicy: a tenant's retention policy: unset ttls keep forever, 0 unsets,
// bad values are 400 naming the field, each tenant has its own.
func TestRetentionPolicy(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t-r", "admin")
	_, other := p.createKey("t-s", "admin")
	r := p.do(http.MethodGet, "/v1/admin/governance/retention/policy", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.Equal(t, map[string]any{"tenant_id": "t-r", "hard_delete_enabled": false, "anonymize_instead_of_delete": false, "updated_at": nil}, r.data()["policy"],
		"nothing set: everything is kept")

	r = p.do(http.MethodPatch, "/v1/admin/governance/retention/policy", admin, `{"messages_ttl_days": 30, "audit_ttl_days": 400, "hard_delete_enabled": true}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	pol := r.data()["policy"].(map[string]any)
	require.EqualValues(t, 30, pol["messages_ttl_days"])
	require.EqualValues(t, 400, pol["audit_ttl_days"])
	require.Equal(t, true, pol["hard_delete_enabled"])
	require.NotContains(t, pol, "documents_ttl_days")

	r = p.do(http.MethodPatch, "/v1/admin/governance/retention/policy", admin, `{"messages_ttl_days": 0, "anonymize_instead_of_delete": true}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	pol = r.data()["policy"].(map[string]any)
	require.NotContains(t, pol, "messages_ttl_days", "0 unsets: kept forever")
	require.EqualValues(t, 400, pol["audit_ttl_days"], "the others keep their value")
	require.Equal(t, true, pol["anonymize_instead_of_delete"])

	for _, c := range []struct{ body, field string }{
		{`{"audit_ttl_days": -1}`, "audit_ttl_days"}, {`{"documents_ttl_days": 40000}`, "documents_ttl_days"}, {`{}`, "messages_ttl_days"},
	} {
		r = p.do(http.MethodPatch, "/v1/admin/governance/retention/policy", admin, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		require.Equal(t, c.field, r.fieldOf(), c.body)
	}
	r = p.do(http.MethodGet, "/v1/admin/governance/retention/policy", other, "")
	require.NotContains(t, r.data()["policy"], "audit_ttl_days", "another tenant's policy is its own")
	require.Eventually(t, func() bool { return len(p.auditEvents(admin, "event_type=retention.policy_changed")) == 2 }, 5*time.Second, 50*time.Millisecond)
}

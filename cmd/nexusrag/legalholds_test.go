package main_test

import (
	"fmt"
	"net/http"
	"testing"

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
	p.waitDocument(admin, "d1", "succeeded") // untouched
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

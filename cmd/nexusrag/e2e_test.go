package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

func TestHealthDocsAndMetrics(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)

	h := p.do(http.MethodGet, "/v1/health", "", "")
	require.Equal(t, http.StatusOK, h.Status, string(h.Body))
	data := h.data()
	require.Equal(t, "ok", data["status"])
	for _, svc := range []string{"gateway", "governance", "retrieval", "ingest", "run"} {
		require.Equal(t, "ok", data["services"].(map[string]any)[svc].(map[string]any)["status"], svc)
	}
	for _, dep := range []string{"postgres", "redis"} {
		require.Equal(t, "ok", data["dependencies"].(map[string]any)[dep].(map[string]any)["status"], dep)
	}
	meta := h.JSON["meta"].(map[string]any)
	require.Equal(t, "v1", meta["api_version"])
	require.Equal(t, h.Header.Get("X-Request-Id"), meta["request_id"])

	doc := p.do(http.MethodGet, "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	paths := doc.JSON["paths"].(map[string]any)
	for _, path := range []string{"/v1/auth/whoami", "/v1/api-keys", "/v1/api-keys/{key_id}", "/v1/audit/events", "/v1/health", "/v1/corpora", "/v1/corpora/{corpus_id}"} {
		require.Contains(t, paths, path)
	}
	page := p.do(http.MethodGet, "/v1/docs", "", "")
	require.Equal(t, http.StatusOK, page.Status)
	require.Contains(t, page.Header.Get("Content-Type"), "text/html")
	require.Contains(t, string(page.Body), "/v1/audit/events")

	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/metrics", "", "").Status, "metrics are not on the public port")
	res, err := http.Get(p.Metrics + "/metrics")
	require.NoError(t, err)
	m, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Contains(t, string(m), `nexusrag_http_requests_total{method="GET",route="/v1/health",status="200"}`)
	require.Contains(t, string(m), "nexusrag_grpc_server_handling_seconds")
	res, err = http.Get(p.Metrics + "/debug/pprof/")
	require.NoError(t, err)
	_ = res.Body.Close()
	require.Equal(t, http.StatusNotFound, res.StatusCode, "pprof is off unless PPROF_ENABLED")
}

// TestRBACMatrix is the product's role matrix, route by route.
func TestRBACMatrix(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	keys := map[string]string{}
	for _, role := range []string{"reader", "editor", "admin"} {
		_, keys[role] = p.createKey("t1", role)
	}
	targetID, _ := p.createKey("t1", "reader") // a key the write routes act on
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", keys["admin"], `{"allow_missing":true}`).Status)

	type call struct{ method, path, body string }
	matrix := []struct {
		call     call
		minRole  string
		okStatus int
	}{
		{call{http.MethodGet, "/v1/auth/whoami", ""}, "reader", http.StatusOK},
		{call{http.MethodGet, "/v1/corpora", ""}, "reader", http.StatusOK},
		{call{http.MethodGet, "/v1/corpora/c1", ""}, "reader", http.StatusOK},
		{call{http.MethodPatch, "/v1/corpora/c1", `{"name":"Corpus one"}`}, "editor", http.StatusOK},
		{call{http.MethodGet, "/v1/api-keys", ""}, "admin", http.StatusOK},
		{call{http.MethodPatch, "/v1/api-keys/" + targetID, `{"name":"renamed"}`}, "admin", http.StatusOK},
		{call{http.MethodGet, "/v1/audit/events", ""}, "admin", http.StatusOK},
		{call{http.MethodDelete, "/v1/api-keys/" + targetID, ""}, "admin", http.StatusOK},
	}
	rank := map[string]int{"reader": 1, "editor": 2, "admin": 3}
	for _, row := range matrix {
		for _, role := range []string{"reader", "editor", "admin"} {
			t.Run(fmt.Sprintf("%s %s as %s", row.call.method, row.call.path, role), func(t *testing.T) {
				r := p.do(row.call.method, row.call.path, keys[role], row.call.body)
				if rank[role] >= rank[row.minRole] {
					require.Equal(t, row.okStatus, r.Status, string(r.Body))
					require.Contains(t, r.JSON, "data")
					return
				}
				require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
				require.Equal(t, "FORBIDDEN", r.errorCode())
			})
		}
		t.Run(fmt.Sprintf("%s %s without key", row.call.method, row.call.path), func(t *testing.T) {
			r := p.do(row.call.method, row.call.path, "", row.call.body)
			require.Equal(t, http.StatusUnauthorized, r.Status)
			require.Equal(t, "AUTH_MISSING", r.errorCode())
		})
	}
	for _, public := range []string{"/v1/health", "/v1/docs", "/v1/openapi.json"} {
		require.Equal(t, http.StatusOK, p.do(http.MethodGet, public, "", "").Status, public)
	}
}

func TestEnvelopesAndErrorCodes(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"HTTP_MAX_BODY_BYTES=2048"})
	keyID, admin := p.createKey("t1", "admin")

	ok := p.do(http.MethodGet, "/v1/auth/whoami", admin, "", "X-Request-Id", "client-chosen-id-1")
	require.Equal(t, http.StatusOK, ok.Status)
	require.Equal(t, "client-chosen-id-1", ok.Header.Get("X-Request-Id"), "request id echoed")
	require.Equal(t, map[string]any{"tenant_id": "t1", "key_id": keyID, "role": "admin", "corpus_ids": []any{}}, ok.data())
	require.Equal(t, map[string]any{"request_id": "client-chosen-id-1", "api_version": "v1"}, ok.JSON["meta"])
	require.NotEmpty(t, p.do(http.MethodGet, "/v1/auth/whoami", admin, "").Header.Get("X-Request-Id"), "request id generated")

	cases := []struct {
		name         string
		method, path string
		key, body    string
		headers      []string
		status       int
		code         string
	}{
		{"malformed json", http.MethodPatch, "/v1/api-keys/" + keyID, admin, `{"name":`, nil, 400, "MALFORMED_REQUEST"},
		{"wrong field type", http.MethodPatch, "/v1/api-keys/" + keyID, admin, `{"name":42}`, nil, 400, "MALFORMED_REQUEST"},
		{"unknown field", http.MethodPatch, "/v1/api-keys/" + keyID, admin, `{"nom":"x"}`, nil, 400, "MALFORMED_REQUEST"},
		{"invalid value", http.MethodPatch, "/v1/api-keys/" + keyID, admin, `{"name":""}`, nil, 400, "INVALID_ARGUMENT"},
		{"body too large", http.MethodPatch, "/v1/api-keys/" + keyID, admin, `{"name":"` + strings.Repeat("x", 4096) + `"}`, nil, 413, "PAYLOAD_TOO_LARGE"},
		{"bad query parameter", http.MethodGet, "/v1/audit/events?limit=lots", admin, "", nil, 400, "MALFORMED_REQUEST"},
		{"unknown route", http.MethodGet, "/v1/nope", admin, "", nil, 404, "ROUTE_NOT_FOUND"},
		{"unknown route without key", http.MethodGet, "/v1/nope", "", "", nil, 404, "ROUTE_NOT_FOUND"},
		{"wrong method", http.MethodPost, "/v1/auth/whoami", admin, `{}`, nil, 405, "METHOD_NOT_ALLOWED"},
		{"missing key", http.MethodGet, "/v1/auth/whoami", "", "", nil, 401, "AUTH_MISSING"},
		{"not a bearer", http.MethodGet, "/v1/auth/whoami", "", "", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "AUTH_INVALID"},
		{"garbage key", http.MethodGet, "/v1/auth/whoami", "nrk_garbage", "", nil, 401, "AUTH_INVALID"},
		{"forged principal header", http.MethodGet, "/v1/api-keys", "", "", []string{"Grpc-Metadata-X-Nexusrag-Tenant-Id", "t1", "Grpc-Metadata-X-Nexusrag-Role", "admin", "X-Tenant-Id", "t1"}, 401, "AUTH_MISSING"},
		{"unknown api key", http.MethodDelete, "/v1/api-keys/doesnotexist", admin, "", nil, 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := p.do(c.method, c.path, c.key, c.body, c.headers...)
			require.Equal(t, c.status, r.Status, string(r.Body))
			require.Equal(t, c.code, r.errorCode(), string(r.Body))
			e := r.JSON["error"].(map[string]any)
			require.NotEmpty(t, e["message"])
			require.IsType(t, map[string]any{}, e["details"])
			require.Equal(t, r.Header.Get("X-Request-Id"), r.JSON["meta"].(map[string]any)["request_id"])
		})
	}
}

func TestLegacyPathsAndSunsetSwitch(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t1", "admin")

	r := p.do(http.MethodGet, "/auth/whoami", admin, "")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, "t1", r.JSON["tenant_id"], "pre-v1 shape: no envelope")
	require.NotContains(t, r.JSON, "data")
	require.Equal(t, "true", r.Header.Get("Deprecation"))
	require.Equal(t, "Sun, 10 May 2026 00:00:00 +0000", r.Header.Get("Sunset"))
	require.Equal(t, `</v1/docs>; rel="successor-version"`, r.Header.Get("Link"))

	e := p.do(http.MethodGet, "/api-keys", "", "")
	require.Equal(t, http.StatusUnauthorized, e.Status)
	require.Equal(t, "AUTH_MISSING", e.JSON["detail"].(map[string]any)["code"], "pre-v1 error shape")
	require.Equal(t, "true", e.Header.Get("Deprecation"))
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/health", "", "").Status)

	off := startPlatform(t, []string{"LEGACY_ROUTES_ENABLED=false"})
	_, admin2 := off.createKey("t1", "admin")
	s := off.do(http.MethodGet, "/auth/whoami", admin2, "")
	require.Equal(t, http.StatusGone, s.Status)
	require.Equal(t, "ENDPOINT_SUNSET", s.JSON["detail"].(map[string]any)["code"])
	require.Equal(t, "/v1/auth/whoami", s.JSON["detail"].(map[string]any)["successor"])
	require.Equal(t, `</v1/docs>; rel="successor-version"`, s.Header.Get("Link"))
	require.Equal(t, http.StatusOK, off.do(http.MethodGet, "/v1/auth/whoami", admin2, "").Status, "/v1 unaffected")
}

func TestIdempotentWrites(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t1", "admin")
	target, _ := p.createKey("t1", "reader")
	other, _ := p.createKey("t1", "reader")

	first := p.do(http.MethodPatch, "/v1/api-keys/"+target, admin, `{"name":"one"}`, "Idempotency-Key", "rename-1")
	require.Equal(t, http.StatusOK, first.Status)
	// A second rename in between must not change what the replay answers.
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/api-keys/"+target, admin, `{"name":"two"}`).Status)
	replay := p.do(http.MethodPatch, "/v1/api-keys/"+target, admin, `{"name":"one"}`, "Idempotency-Key", "rename-1")
	require.Equal(t, http.StatusOK, replay.Status)
	require.Equal(t, string(first.Body), string(replay.Body))
	require.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))

	conflict := p.do(http.MethodPatch, "/v1/api-keys/"+other, admin, `{"name":"one"}`, "Idempotency-Key", "rename-1")
	require.Equal(t, http.StatusConflict, conflict.Status)
	require.Equal(t, "IDEMPOTENCY_KEY_CONFLICT", conflict.errorCode())

	tooLong := p.do(http.MethodPatch, "/v1/api-keys/"+target, admin, `{"name":"x"}`, "Idempotency-Key", strings.Repeat("k", 129))
	require.Equal(t, http.StatusBadRequest, tooLong.Status)
	require.Equal(t, "IDEMPOTENCY_KEY_INVALID", tooLong.errorCode())
}

func TestRevokedKeyIsRejectedWithinFiveSeconds(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	keyID, key := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/auth/whoami", key, "").Status)

	out, err := run(t, p.env, "", "apikey", "revoke", keyID)
	require.NoError(t, err)
	require.Contains(t, out, "revoked "+keyID)
	start := time.Now()
	require.Eventually(t, func() bool {
		r := p.do(http.MethodGet, "/v1/auth/whoami", key, "")
		return r.Status == http.StatusUnauthorized && r.errorCode() == "AUTH_REVOKED"
	}, 5*time.Second, 50*time.Millisecond)
	t.Logf("revoked key refused after %s", time.Since(start).Round(time.Millisecond))

	_, err = run(t, p.env, key+"\n", "apikey", "verify")
	require.Error(t, err, "verify refuses a revoked key")
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	aID, adminA := p.createKey("tenant-a", "admin")
	bID, adminB := p.createKey("tenant-b", "admin")
	p.do(http.MethodGet, "/v1/auth/whoami", adminB, "")

	list := p.do(http.MethodGet, "/v1/api-keys", adminA, "")
	require.Equal(t, http.StatusOK, list.Status)
	keys := list.data()["api_keys"].([]any)
	require.Len(t, keys, 1)
	require.Equal(t, aID, keys[0].(map[string]any)["key_id"])

	for _, c := range []struct{ method, body string }{{http.MethodPatch, `{"name":"mine now"}`}, {http.MethodDelete, ""}} {
		r := p.do(c.method, "/v1/api-keys/"+bID, adminA, c.body)
		require.Equal(t, http.StatusNotFound, r.Status, "tenant A cannot touch tenant B's key")
	}
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/auth/whoami", adminB, "").Status, "B's key still works")

	require.Eventually(t, func() bool {
		return len(p.auditEvents(adminB, "event_type=auth.api_key.created")) > 0
	}, 5*time.Second, 50*time.Millisecond)
	for _, ev := range p.auditEvents(adminA, "limit=200") {
		require.Equal(t, "tenant-a", ev["tenant_id"], "tenant A sees only its own audit events")
	}
}

func TestAuditLogRecordsAndRedacts(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	readerID, reader := p.createKey("t1", "reader")
	_, admin := p.createKey("t1", "admin")
	revokedID, revoked := p.createKey("t1", "reader")
	_, err := run(t, p.env, "", "apikey", "revoke", revokedID)
	require.NoError(t, err)

	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/auth/whoami", reader, "").Status)
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/api-keys", reader, "").Status)
	require.Eventually(t, func() bool {
		return p.do(http.MethodGet, "/v1/auth/whoami", revoked, "").Status == http.StatusUnauthorized
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/api-keys/"+readerID, admin, `{"name":"renamed"}`).Status)

	// Another service records through the governance gRPC API; content-bearing keys are redacted.
	marker := fmt.Sprintf("confidential message text %d", time.Now().UnixNano())
	recordThroughGRPC(t, p.GRPC, map[string]any{"message_text": marker, "nested": []any{map[string]any{"api_key": reader, "ok": "kept"}}})

	want := map[string]string{
		"auth.api_key.created": "success", "auth.api_key.revoked": "success", "auth.access.success": "success",
		"auth.access.failure": "failure", "rbac.forbidden": "failure", "auth.api_key.updated": "success",
	}
	for typ, outcome := range want {
		require.Eventually(t, func() bool {
			evs := p.auditEvents(admin, "event_type="+typ+"&outcome="+outcome)
			return len(evs) > 0
		}, 5*time.Second, 50*time.Millisecond, typ)
	}
	forbidden := p.auditEvents(admin, "event_type=rbac.forbidden")[0]
	require.Equal(t, readerID, forbidden["actor_id"])
	require.Equal(t, "/nexusrag.gateway.v1.AuthService/ListApiKeys", forbidden["resource_id"])

	ctx := context.Background()
	var rows int
	require.NoError(t, p.DB().QueryRow(ctx, `SELECT count(*) FROM governance.audit_events WHERE metadata::text LIKE '%"kept"%'`).Scan(&rows))
	require.Equal(t, 1, rows, "the gRPC-recorded event is stored")
	for _, secret := range []string{reader, admin, revoked, marker, "Bearer "} {
		var hits int
		require.NoError(t, p.DB().QueryRow(ctx,
			`SELECT count(*) FROM governance.audit_events e WHERE strpos(e::text, $1) > 0`, secret).Scan(&hits))
		require.Zero(t, hits, "audit table must not contain %q", secret[:min(len(secret), 12)])
	}
	// Nor do the logs.
	for _, secret := range []string{reader, admin, revoked, marker} {
		require.NotContains(t, p.logs.String(), secret)
	}
}

func TestGracefulShutdownLosesNoAuditEvents(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t1", "admin")
	target, _ := p.createKey("t1", "reader")
	const n = 25
	for i := range n {
		require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/api-keys/"+target, admin, fmt.Sprintf(`{"name":"n%d"}`, i)).Status)
	}
	require.NoError(t, p.Stop(), "clean exit on SIGTERM")
	var got int
	require.NoError(t, p.DB().QueryRow(context.Background(),
		`SELECT count(*) FROM governance.audit_events WHERE event_type = 'auth.api_key.updated'`).Scan(&got))
	require.Equal(t, n, got)
	require.Contains(t, p.logs.String(), `"msg":"stopped"`)
}

// TestSplitProcessesReachEachOther runs the services as three processes that share
// service keys: a backend, a gateway, and a lone retrieval process an operator calls
// with an API key. A process with other keys is refused, and one without keys does not
// start.
func TestSplitProcessesReachEachOther(t *testing.T) {
	t.Parallel()
	env, dbURL := newEnv(t)
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	// Each side calls the other (the backend reads kill switches from ops, beside the
	// gateway): the gateway's address is chosen before either starts.
	gwAddr := freeAddr(t)
	backend := startWithEnv(t, append(env, "OPS_GRPC_ADDR="+gwAddr), dbURL, "--services=governance,retrieval,ingest,run,billing,failover")
	peers := []string{"GOVERNANCE_GRPC_ADDR=" + backend.GRPC, "RETRIEVAL_GRPC_ADDR=" + backend.GRPC, "INGEST_GRPC_ADDR=" + backend.GRPC,
		"RUN_GRPC_ADDR=" + backend.GRPC, "BILLING_GRPC_ADDR=" + backend.GRPC, "FAILOVER_GRPC_ADDR=" + backend.GRPC}
	gw := startWithEnv(t, append(env, append(peers, "GRPC_ADDR="+gwAddr)...), dbURL, "--services=gateway,ops,ui") // as in deploy/k8s
	require.Empty(t, backend.HTTP, "no HTTP listener without the gateway")
	keyID, admin := gw.createKey("t1", "admin")

	h := gw.do(http.MethodGet, "/v1/health", "", "")
	require.Equal(t, http.StatusOK, h.Status, string(h.Body))
	require.Eventually(t, func() bool {
		return len(gw.auditEvents(admin, "event_type=auth.api_key.created")) > 0
	}, 5*time.Second, 50*time.Millisecond, "audit list served by the governance process")
	require.Equal(t, http.StatusOK, gw.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing":true}`).Status, "corpora served by the retrieval process")
	doc := gw.do(http.MethodPost, "/v1/documents/text", admin, `{"corpus_id":"c1","text":"split processes","document_id":"d1"}`)
	require.Equal(t, http.StatusAccepted, doc.Status, string(doc.Body))
	gw.waitDocument(admin, "d1", "succeeded")

	// An operator's key on a process without the gateway: verified through the gateway.
	lone := startWithEnv(t, append(env, "GATEWAY_GRPC_ADDR="+gw.GRPC, "GOVERNANCE_GRPC_ADDR="+backend.GRPC, "BILLING_GRPC_ADDR="+backend.GRPC,
		"OPS_GRPC_ADDR="+gw.GRPC), dbURL, "--services=retrieval")
	corpora, err := retrievalv1.NewRetrievalServiceClient(bareConn(t, lone.GRPC)).ListCorpora(withKey(context.Background(), admin), &retrievalv1.ListCorporaRequest{})
	require.NoError(t, err)
	require.Len(t, corpora.GetCorpora(), 1)
	_, err = run(t, env, "", "apikey", "revoke", keyID)
	require.NoError(t, err)
	start := time.Now()
	require.Eventually(t, func() bool {
		_, err := retrievalv1.NewRetrievalServiceClient(bareConn(t, lone.GRPC)).ListCorpora(withKey(context.Background(), admin), &retrievalv1.ListCorporaRequest{})
		e, _ := apierr.From(err)
		return status.Code(err) == codes.Unauthenticated && e.Code == apierr.CodeAuthRevoked
	}, 5*time.Second, 50*time.Millisecond, "a revoked key is refused by the lone process within 5 s")
	t.Logf("revocation reached the lone retrieval process after %s", time.Since(start).Round(time.Millisecond))

	// A third process holding other keys: the backend refuses its calls.
	foreign := filepath.Join(t.TempDir(), "other.keys")
	_, err = run(t, env, "", "servicekey", "create", "--out", foreign)
	require.NoError(t, err)
	intruder := startWithEnv(t, append(append(env, peers...), "SERVICE_AUTH_KEYS_FILE="+foreign), dbURL, "--services=gateway,ops,ui")
	_, admin2 := intruder.createKey("t1", "admin")
	r := intruder.do(http.MethodGet, "/v1/corpora", admin2, "")
	require.Equal(t, http.StatusBadGateway, r.Status, string(r.Body))
	require.Equal(t, apierr.CodeServiceTokenInvalid, r.errorCode())
	require.Contains(t, backend.logs.String(), "service token refused", "the refusal is in the backend's log")

	withoutKeys := slices.DeleteFunc(slices.Clone(env), func(v string) bool { return strings.HasPrefix(v, "SERVICE_AUTH_KEYS_FILE=") })
	_, err = run(t, append(withoutKeys, peers...), "", "serve", "--services=gateway,ops,ui")
	require.ErrorContains(t, err, "SERVICE_AUTH_KEYS_FILE is required")
	_, err = run(t, env, "", "serve", "--services=gateway")
	require.ErrorContains(t, err, "GOVERNANCE_GRPC_ADDR is required")
	_, err = run(t, env, "", "serve", "--services=gateway,search")
	require.ErrorContains(t, err, `unknown service "search"`)
}

// TestOperatorKeysOverGRPC: an API key on the gRPC port has the tenant scope and the
// revocation of the REST edge.
func TestOperatorKeysOverGRPC(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin1 := p.createKey("t1", "admin")
	id2, admin2 := p.createKey("t2", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin1, `{"allow_missing":true}`).Status)
	ctx := context.Background()
	conn := bareConn(t, p.GRPC)

	keys, err := gatewayv1.NewAuthServiceClient(conn).ListApiKeys(withKey(ctx, admin2), &gatewayv1.ListApiKeysRequest{})
	require.NoError(t, err)
	require.Len(t, keys.GetApiKeys(), 1, "t2 sees its own key only")
	require.Equal(t, "t2", keys.GetApiKeys()[0].GetTenantId())
	_, err = retrievalv1.NewRetrievalServiceClient(conn).GetCorpus(withKey(ctx, admin2), &retrievalv1.GetCorpusRequest{CorpusId: "c1"})
	require.Equal(t, codes.NotFound, status.Code(err), "t1's corpus does not exist for t2")
	_, err = retrievalv1.NewRetrievalServiceClient(conn).GetCorpus(withKey(ctx, admin1), &retrievalv1.GetCorpusRequest{CorpusId: "c1"})
	require.NoError(t, err)

	_, err = run(t, p.env, "", "apikey", "revoke", id2)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := gatewayv1.NewAuthServiceClient(conn).WhoAmI(withKey(ctx, admin2), &gatewayv1.WhoAmIRequest{})
		e, _ := apierr.From(err)
		return e.Code == apierr.CodeAuthRevoked
	}, 5*time.Second, 50*time.Millisecond, "revoked on the gRPC port within 5 s")
	require.Eventually(t, func() bool {
		return len(p.auditEvents(admin1, "event_type=rbac.forbidden")) == 0
	}, time.Second, 50*time.Millisecond)
}

func TestBadConfigurationNamesTheVariable(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, "AUTH_KEY_SYNC_INTERVAL=soon")
	_, err := run(t, env, "", "serve")
	require.ErrorContains(t, err, "AUTH_KEY_SYNC_INTERVAL")
	env, _ = newEnv(t, "DB_MAX_CONNS=many")
	_, err = run(t, env, "", "migrate")
	require.ErrorContains(t, err, "DB_MAX_CONNS")
}

func TestMigrateIsIdempotentAndListsStatus(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t)
	for range 2 {
		_, err := run(t, env, "", "migrate")
		require.NoError(t, err)
	}
	out, err := run(t, env, "", "migrate", "--status")
	require.NoError(t, err)
	for _, schema := range []string{"platform", "governance", "retrieval", "gateway"} {
		require.Contains(t, out, schema)
	}
	require.NotContains(t, out, "pending")
}

// auditEvents lists audit events through the API.
func (p *platform) auditEvents(key, query string) []map[string]any {
	p.t.Helper()
	r := p.do(http.MethodGet, "/v1/audit/events?"+query, key, "")
	require.Equal(p.t, http.StatusOK, r.Status, string(r.Body))
	var out []map[string]any
	raw, _ := json.Marshal(r.data()["events"])
	require.NoError(p.t, json.Unmarshal(raw, &out))
	return out
}

func TestDevBypassIsOffByDefaultAndScopedWhenOn(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"AUTH_DEV_BYPASS=true"})
	r := p.do(http.MethodGet, "/v1/auth/whoami", "", "", "X-Tenant-Id", "t9")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, map[string]any{"tenant_id": "t9", "key_id": "", "role": "admin", "corpus_ids": []any{}}, r.data(), "X-Role defaults to admin")

	cases := []struct {
		headers []string
		status  int
		code    string
	}{
		{[]string{"X-Tenant-Id", "t9", "X-Role", "reader"}, http.StatusForbidden, "FORBIDDEN"},
		{[]string{"X-Tenant-Id", "t9", "X-Role", "root"}, http.StatusUnauthorized, "AUTH_INVALID"},
		{[]string{"X-Tenant-Id", "no spaces allowed"}, http.StatusUnauthorized, "AUTH_INVALID"},
		{nil, http.StatusUnauthorized, "AUTH_MISSING"},
	}
	for _, c := range cases {
		r := p.do(http.MethodGet, "/v1/api-keys", "", "", c.headers...)
		require.Equal(t, c.status, r.Status, "%v: %s", c.headers, r.Body)
		require.Equal(t, c.code, r.errorCode())
	}
	// The forged-header case of TestEnvelopesAndErrorCodes shows X-Tenant-Id is ignored by default.
}

// TestTracePropagatesToServices sends a W3C traceparent: the gateway's access log and the
// governance service's call log carry the same trace id.
func TestTracePropagatesToServices(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"LOG_LEVEL=debug"})
	_, admin := p.createKey("t1", "admin")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := p.do(http.MethodGet, "/v1/audit/events", admin, "", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusOK, r.Status)
	require.Eventually(t, func() bool {
		var access, call bool
		for _, line := range strings.Split(p.logs.String(), "\n") {
			if !strings.Contains(line, `"trace_id":"`+traceID+`"`) {
				continue
			}
			access = access || (strings.Contains(line, `"msg":"http request"`) && strings.Contains(line, `"tenant_id":"t1"`))
			call = call || (strings.Contains(line, `"msg":"grpc call"`) && strings.Contains(line, "AuditService/ListAuditEvents"))
		}
		return access && call
	}, 5*time.Second, 20*time.Millisecond, "trace id in the gateway access log and the service call log")
}

func TestCorporaOverHTTP(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, editorA := p.createKey("tenant-a", "editor")
	_, readerB := p.createKey("tenant-b", "reader")
	_, adminA := p.createKey("tenant-a", "admin")

	created := p.do(http.MethodPatch, "/v1/corpora/c1", editorA, `{"allow_missing":true,"provider_config_json":{}}`)
	require.Equal(t, http.StatusOK, created.Status, string(created.Body))
	require.Equal(t, true, created.data()["created"])
	cfg := created.data()["corpus"].(map[string]any)["provider_config_json"]
	require.Equal(t, map[string]any{"retrieval": map[string]any{"provider": "local_pgvector", "top_k_default": float64(5)}}, cfg)

	cases := []struct {
		body, field string
	}{
		{`{"provider_config_json":{"retrieval":{"provider":"elastic"}}}`, "provider_config_json.retrieval.provider"},
		{`{"provider_config_json":{"retrieval":{"provider":"gcp_vertex","project":"my-project","location":"global"}}}`, "provider_config_json.retrieval.resource_id"},
		{`{"provider_config_json":{"retrieval":{"top_k_default":"ten"}}}`, "provider_config_json.retrieval.top_k_default"},
		{`{"provider_config_json":{"retrieval":{"top_k_default":99}}}`, "provider_config_json.retrieval.top_k_default"},
		{`{"provider_config_json":{"retrieval":{"candidate_depth":5}}}`, "provider_config_json.retrieval.candidate_depth"},
		{`{"provider_config_json":{"retrieval":{"lexical_weight":0}}}`, "provider_config_json.retrieval.vector_weight"},
		{`{"provider_config_json":{"retrieval":{"feedback":"on"}}}`, "provider_config_json.retrieval.feedback"},
	}
	for _, c := range cases {
		r := p.do(http.MethodPatch, "/v1/corpora/c1", editorA, c.body)
		require.Equal(t, http.StatusBadRequest, r.Status, c.body)
		require.Equal(t, "INVALID_PROVIDER_CONFIG", r.errorCode())
		require.Equal(t, c.field, r.JSON["error"].(map[string]any)["details"].(map[string]any)["field"])
	}
	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/corpora/c1", readerB, "").Status, "tenant B does not see A's corpus")
	require.Equal(t, http.StatusNotFound, p.do(http.MethodPatch, "/v1/corpora/nope", editorA, `{"name":"x"}`).Status)

	require.Eventually(t, func() bool {
		evs := p.auditEvents(adminA, "event_type=corpora.updated")
		return len(evs) == 1 && evs[0]["resource_id"] == "c1"
	}, 5*time.Second, 50*time.Millisecond, "one successful update audited; refused ones are not")

	// The local index's ranking settings are set by PATCH and come back normalized.
	ranked := p.do(http.MethodPatch, "/v1/corpora/c1", editorA, `{"provider_config_json":{"retrieval":{"vector_weight":0.25,"feedback":true,"candidate_depth":100}}}`)
	require.Equal(t, http.StatusOK, ranked.Status, string(ranked.Body))
	require.Equal(t, map[string]any{"retrieval": map[string]any{"provider": "local_pgvector", "top_k_default": float64(5),
		"vector_weight": 0.25, "feedback": true, "candidate_depth": float64(100)}}, ranked.data()["corpus"].(map[string]any)["provider_config_json"])
}

func TestProviderSmoke(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t1", "admin")
	configs := map[string]string{
		"local":   `{}`,
		"bedrock": `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB1","region":"us-east-1"}}`,
		"vertex":  `{"retrieval":{"provider":"gcp_vertex","project":"my-project","location":"global","resource_id":"ds-1"}}`,
	}
	for id, cfg := range configs {
		r := p.do(http.MethodPatch, "/v1/corpora/"+id, admin, `{"allow_missing":true,"provider_config_json":`+cfg+`}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	}
	upsertThroughGRPC(t, p.GRPC, "t1", "local", "gates", "The release gates for Agent 2.0 are green suites and a load test.")
	upsertThroughGRPC(t, p.GRPC, "t1", "local", "cooking", "Risotto needs warm stock.")

	out, err := run(t, p.env, "", "provider-smoke", "--tenant", "t1", "--corpus", "local", "--query", "release gates", "--top-k", "2")
	require.NoError(t, err)
	require.Contains(t, out, "provider: local_pgvector")
	require.Contains(t, out, "gates:0")

	for corpus, code := range map[string]string{"bedrock": "AWS_CONFIG_MISSING", "vertex": "VERTEX_RETRIEVAL_CONFIG_MISSING", "nope": "NOT_FOUND"} {
		out, err := run(t, p.env, "", "provider-smoke", "--tenant", "t1", "--corpus", corpus, "--query", "test query", "--top-k", "5")
		require.Error(t, err, corpus)
		require.Contains(t, out, "error: "+code+":", corpus)
	}
	out, err = run(t, p.env, "", "provider-smoke", "--tenant", "t2", "--corpus", "local", "--query", "release gates")
	require.Error(t, err)
	require.Contains(t, out, "error: NOT_FOUND:", "another tenant's corpus does not exist for t2")
}

func TestVertexEmbeddingsWithoutCredentialsStopStartUp(t *testing.T) {
	t.Parallel()
	env, _ := newEnv(t, "EMBEDDINGS_PROVIDER=vertex", "GOOGLE_CLOUD_PROJECT=my-project")
	_, err := run(t, env, "", "migrate")
	require.NoError(t, err)
	_, err = run(t, env, "", "serve")
	require.ErrorContains(t, err, "EMBEDDINGS_PROVIDER=vertex")
	require.ErrorContains(t, err, "GOOGLE_APPLICATION_CREDENTIALS")
	env, _ = newEnv(t, "EMBEDDINGS_PROVIDER=vertex")
	_, err = run(t, env, "", "serve")
	require.ErrorContains(t, err, "GOOGLE_CLOUD_PROJECT")
}

// freeAddr is a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

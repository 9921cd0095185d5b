package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/services/governance"
)

// poll GETs path until done says its data is finished.
func (p *platform) poll(key, path string, done func(map[string]any) bool) map[string]any {
	p.t.Helper()
	var last map[string]any
	require.Eventually(p.t, func() bool {
		r := p.do(http.MethodGet, path, key, "")
		require.Equal(p.t, http.StatusOK, r.Status, "%s", r.Body)
		last = r.data()
		return done(last)
	}, 20*time.Second, 50*time.Millisecond, "%s never finished: %v", path, last)
	return last
}

func statusIs(obj string, want ...string) func(map[string]any) bool {
	return func(d map[string]any) bool {
		s, _ := d[obj].(map[string]any)["status"].(string)
		return slices.Contains(want, s)
	}
}

// sqlStrings runs a query of one text column.
func (p *platform) sqlStrings(sql string, args ...any) []string {
	p.t.Helper()
	rows, err := p.DB().Query(context.Background(), sql, args...)
	require.NoError(p.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(p.t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(p.t, rows.Err())
	if out == nil {
		out = []string{}
	}
	return out
}

func strs(v any) []string {
	out := []string{}
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// TestGovernanceScenario: a tenant with documents, sessions and audit rows; a hold on one
// document; a retention run; a session exported and then deleted by DSAR. The report, the
// artifact and the database agree, and the held rows are untouched.
func TestGovernanceScenario(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, admin := p.createKey("t-g", "admin")
	_, second := p.createKey("t-g", "admin")
	_, other := p.createKey("t-x", "admin")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true}`).Status)
	docs := map[string]string{"d-old": "Expired release notes about the quarterly gates.", "d-held": "Evidence for matter 17 about the quarterly gates.",
		"d-new": "Fresh notes about the quarterly gates."}
	for id, text := range docs {
		require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", admin, fmt.Sprintf(`{"corpus_id": "c1", "document_id": %q, "text": %q}`, id, text)).Status)
	}
	for id := range docs {
		p.waitDocument(admin, id, "succeeded")
	}
	for _, s := range []string{"s-old", "s-new", "s-dsar", "s-dsar"} {
		res, _ := p.runStream(admin, fmt.Sprintf(`{"session_id": %q, "corpus_id": "c1", "message": "What about the quarterly gates?"}`, s))
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	// Forty days pass for d-old, d-held and session s-old.
	db := p.DB()
	_, err := db.Exec(context.Background(), `UPDATE ingest.documents SET created_at = now() - interval '40 days' WHERE tenant_id = 't-g' AND document_id IN ('d-old', 'd-held')`)
	require.NoError(t, err)
	for _, table := range []string{"run.messages", "run.checkpoints"} {
		_, err = db.Exec(context.Background(), `UPDATE `+table+` SET created_at = now() - interval '40 days' WHERE tenant_id = 't-g' AND session_id = 's-old'`)
		require.NoError(t, err)
	}
	oldMessages := p.sqlStrings(`SELECT seq::text FROM run.messages WHERE tenant_id = 't-g' AND session_id = 's-old' ORDER BY seq::text`)
	require.Len(t, oldMessages, 2)
	oldCheckpoints := p.sqlStrings(`SELECT run_id::text || ':' || step FROM run.checkpoints WHERE tenant_id = 't-g' AND session_id = 's-old' ORDER BY 1`)
	require.NotEmpty(t, oldCheckpoints)
	require.Eventually(t, func() bool { return len(p.auditEvents(admin, "event_type=run.invoked")) == 4 }, 10*time.Second, 50*time.Millisecond)

	r := p.do(http.MethodPost, "/v1/admin/governance/legal-holds", admin, `{"scope_type": "document", "scope_id": "d-held", "reason": "matter 17"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	r = p.do(http.MethodPatch, "/v1/admin/governance/retention/policy", admin,
		`{"messages_ttl_days": 30, "checkpoints_ttl_days": 30, "documents_ttl_days": 30, "hard_delete_enabled": true}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)

	// The retention run.
	require.Equal(t, "FORBIDDEN", p.do(http.MethodPost, "/v1/admin/governance/retention/run?tenant_id=t-x", admin, "").errorCode())
	r = p.do(http.MethodPost, "/v1/admin/governance/retention/run?tenant_id=t-g", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	runID := r.data()["run"].(map[string]any)["run_id"]
	rep := p.poll(admin, fmt.Sprintf("/v1/admin/governance/retention/report?tenant_id=t-g&run_id=%v", runID), statusIs("run", "completed", "failed"))["run"].(map[string]any)
	require.Equal(t, "completed", rep["status"], "%v", rep)
	cats := map[string]map[string]any{}
	for _, c := range rep["categories"].([]any) {
		cats[c.(map[string]any)["category"].(string)] = c.(map[string]any)
	}
	require.Equal(t, oldMessages, strs(cats["messages"]["deleted_ids"]))
	require.Equal(t, oldCheckpoints, strs(cats["checkpoints"]["deleted_ids"]))
	require.Equal(t, []string{"d-old"}, strs(cats["documents"]["deleted_ids"]))
	require.Equal(t, []string{"d-held"}, strs(cats["documents"]["held_ids"]))
	require.Equal(t, "skipped", cats["audit_events"]["status"])
	require.Equal(t, "skipped", cats["backups"]["status"])

	// The database agrees: the expired rows are gone, the held and the fresh ones are there.
	require.Empty(t, p.sqlStrings(`SELECT seq::text FROM run.messages WHERE tenant_id = 't-g' AND session_id = 's-old'`))
	require.Empty(t, p.sqlStrings(`SELECT step::text FROM run.checkpoints WHERE tenant_id = 't-g' AND session_id = 's-old'`))
	require.Equal(t, []string{"d-held", "d-new"}, p.sqlStrings(`SELECT document_id FROM ingest.documents WHERE tenant_id = 't-g' ORDER BY 1`))
	require.Equal(t, []string{docs["d-held"]}, p.sqlStrings(`SELECT content FROM ingest.documents WHERE tenant_id = 't-g' AND document_id = 'd-held'`))
	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/documents/d-old", admin, "").Status)
	// Retrieval agrees in the same step: the deleted document's chunks are gone, the held one's are found.
	require.Empty(t, p.sqlStrings(`SELECT chunk_id::text FROM retrieval.chunks WHERE tenant_id = 't-g' AND document_id = 'd-old'`))
	hits, err := retrievalv1.NewRetrievalServiceClient(bareConn(t, p.GRPC)).Retrieve(withKey(context.Background(), admin),
		&retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "Expired release notes about the quarterly gates", TopK: 10})
	require.NoError(t, err)
	var found []string
	for _, c := range hits.GetChunks() {
		found = append(found, c.GetDocumentId())
	}
	require.NotContains(t, found, "d-old", "retrieval no longer finds the deleted document")
	require.Contains(t, found, "d-held")

	// DSAR export of session s-dsar: every row about it, with checksums.
	dsarMessages := p.sqlStrings(`SELECT seq::text FROM run.messages WHERE tenant_id = 't-g' AND session_id = 's-dsar' ORDER BY seq::text`)
	require.Len(t, dsarMessages, 4)
	r = p.do(http.MethodPost, "/v1/admin/governance/dsar", admin, `{"request_type": "export", "subject_type": "session", "subject_id": "s-dsar", "reason": "ticket 9"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	exportID := r.data()["dsar"].(map[string]any)["dsar_id"]
	p.poll(admin, fmt.Sprintf("/v1/admin/governance/dsar/%v", exportID), statusIs("dsar", "completed"))
	r = p.do(http.MethodGet, fmt.Sprintf("/v1/admin/governance/dsar/%v/artifact", exportID), admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var art governancev1.GetDsarArtifactResponse
	raw, _ := json.Marshal(r.data())
	require.NoError(t, protojson.Unmarshal(raw, &art))
	files := map[string]string{}
	for i, f := range art.GetFiles() {
		sum := sha256.Sum256([]byte(f.GetNdjson()))
		require.Equal(t, hex.EncodeToString(sum[:]), art.GetManifest().GetFiles()[i].GetSha256(), f.GetName())
		require.EqualValues(t, strings.Count(f.GetNdjson(), "\n"), art.GetManifest().GetFiles()[i].GetRows())
		files[f.GetName()] = f.GetNdjson()
	}
	require.Equal(t, governance.ManifestSum(art.GetManifest().GetFiles()), art.GetManifest().GetSha256())
	var exported []string
	for line := range strings.Lines(files["run.messages.ndjson"]) {
		var m struct {
			Seq     int64  `json:"seq"`
			Content string `json:"content"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &m))
		require.NotEmpty(t, m.Content)
		exported = append(exported, fmt.Sprint(m.Seq))
	}
	slices.Sort(exported)
	require.Equal(t, dsarMessages, exported)
	require.Equal(t, 2, strings.Count(files["governance.audit_events.ndjson"], "run.invoked"))

	// DSAR delete of the same session: a second admin key approves it.
	r = p.do(http.MethodPost, "/v1/admin/governance/dsar", admin, `{"request_type": "delete", "subject_type": "session", "subject_id": "s-dsar", "reason": "ticket 10"}`)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	deleteID := r.data()["dsar"].(map[string]any)["dsar_id"]
	require.Equal(t, "pending_approval", r.data()["dsar"].(map[string]any)["status"])
	r = p.do(http.MethodGet, fmt.Sprintf("/v1/admin/governance/dsar/%v/artifact", deleteID), admin, "")
	require.Equal(t, http.StatusConflict, r.Status)
	require.Equal(t, "DSAR_REQUIRES_APPROVAL", r.errorCode())
	r = p.do(http.MethodPost, fmt.Sprintf("/v1/admin/governance/dsar/%v/approve", deleteID), admin, "")
	require.Equal(t, http.StatusForbidden, r.Status)
	require.Equal(t, "DSAR_SELF_APPROVAL", r.errorCode())
	require.Equal(t, "DSAR_NOT_FOUND", p.do(http.MethodPost, fmt.Sprintf("/v1/admin/governance/dsar/%v/approve", deleteID), other, "").errorCode())
	r = p.do(http.MethodPost, fmt.Sprintf("/v1/admin/governance/dsar/%v/approve", deleteID), second, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	done := p.poll(admin, fmt.Sprintf("/v1/admin/governance/dsar/%v", deleteID), statusIs("dsar", "completed", "failed"))["dsar"].(map[string]any)
	require.Equal(t, "completed", done["status"], "%v", done)
	require.Empty(t, p.sqlStrings(`SELECT seq::text FROM run.messages WHERE tenant_id = 't-g' AND session_id = 's-dsar'`))
	require.Empty(t, p.sqlStrings(`SELECT session_id FROM run.sessions WHERE tenant_id = 't-g' AND session_id = 's-dsar'`))
	require.Empty(t, p.sqlStrings(`SELECT id::text FROM governance.audit_events WHERE tenant_id = 't-g' AND resource_type = 'session' AND resource_id = 's-dsar'`),
		"the audit rows about the session no longer name it")
	r = p.do(http.MethodGet, fmt.Sprintf("/v1/admin/governance/dsar/%v/artifact", deleteID), admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	var receipt []string
	for _, f := range r.data()["files"].([]any) {
		if f.(map[string]any)["name"] == "run.messages.ids.ndjson" {
			for line := range strings.Lines(f.(map[string]any)["ndjson"].(string)) {
				var v struct{ ID string }
				require.NoError(t, json.Unmarshal([]byte(line), &v))
				receipt = append(receipt, v.ID)
			}
		}
	}
	slices.Sort(receipt)
	require.Equal(t, dsarMessages, receipt, "the receipt lists exactly the rows the export had")

	// Held data: a destructive DSAR answers 409; the held document is untouched.
	r = p.do(http.MethodPost, "/v1/admin/governance/dsar", admin, `{"request_type": "delete", "subject_type": "document", "subject_id": "d-held", "reason": "x"}`)
	require.Equal(t, http.StatusConflict, r.Status, "%s", r.Body)
	require.Equal(t, "LEGAL_HOLD_ACTIVE", r.errorCode())
	require.Equal(t, "DSAR_NOT_FOUND", p.do(http.MethodGet, "/v1/admin/governance/dsar/999999", admin, "").errorCode())
	require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/admin/governance/dsar/999999/artifact", admin, "").Status)
	require.Equal(t, "d-held", p.waitDocument(admin, "d-held", "succeeded")["document_id"])

	// Governance status and evidence.
	r = p.do(http.MethodGet, "/v1/ops/governance/status", admin, "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	require.EqualValues(t, 1, r.data()["active_legal_holds"])
	require.Equal(t, "completed", r.data()["latest_retention_runs"].([]any)[0].(map[string]any)["status"])
	require.Eventually(t, func() bool { // the run's audit event is delivered in the recorder's next batch
		r = p.do(http.MethodGet, "/v1/ops/governance/evidence?window_days=30", admin, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		return slices.ContainsFunc(r.data()["audit_events_by_type"].([]any), func(c any) bool {
			return c.(map[string]any)["key"] == "retention.run_completed"
		})
	}, 10*time.Second, 50*time.Millisecond)
	require.Len(t, r.data()["sha256"], 64)
	require.EqualValues(t, 1, r.data()["retention_runs"])
	require.Equal(t, "window_days", p.do(http.MethodGet, "/v1/ops/governance/evidence?window_days=1000", admin, "").fieldOf())
	_, editor := p.createKey("t-g", "editor")
	require.Equal(t, http.StatusForbidden, p.do(http.MethodGet, "/v1/ops/governance/status", editor, "").Status)

	// A source governance cannot read (here: a table taken away) answers 503, never a partial report.
	_, err = db.Exec(context.Background(), `ALTER TABLE governance.legal_holds RENAME TO legal_holds_offline`)
	require.NoError(t, err)
	for _, path := range []string{"/v1/ops/governance/status", "/v1/ops/governance/evidence"} {
		r = p.do(http.MethodGet, path, admin, "")
		require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s: %s", path, r.Body)
		require.Equal(t, "GOVERNANCE_REPORT_UNAVAILABLE", r.errorCode())
	}
	_, err = db.Exec(context.Background(), `ALTER TABLE governance.legal_holds_offline RENAME TO legal_holds`)
	require.NoError(t, err)

	// The same over gRPC with the key, as grpcurl sends it.
	conn := bareConn(t, p.GRPC)
	st, err := governancev1.NewGovernanceReportServiceClient(conn).GetGovernanceStatus(withKey(context.Background(), admin), &governancev1.GetGovernanceStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "t-g", st.GetTenantId())
	d, err := governancev1.NewDsarServiceClient(conn).GetDsar(withKey(context.Background(), admin), &governancev1.GetDsarRequest{DsarId: 999999})
	require.Nil(t, d)
	e, _ := apierr.FromStatus(status.Convert(err))
	require.Equal(t, "DSAR_NOT_FOUND", e.Code)
}

package main_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
)

// TestDeletedDocumentsStayGone races a reindex against a delete of the same document,
// round after round: once the delete answers 200, retrieval never returns the document
// again (checked while the reindex's job is still settling and after), and a run does
// not cite it. A delete refused with 409 DOCUMENT_BUSY (the reindex is running) is
// retried, as a client would.
func TestDeletedDocumentsStayGone(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, editor := p.createKey("t1", "editor")
	_, reader := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", editor, `{"allow_missing":true}`).Status)
	require.Equal(t, http.StatusAccepted, p.do(http.MethodPost, "/v1/documents/text", editor,
		`{"corpus_id":"c1","document_id":"keeper","text":"The keeper's log lists every ship that passed the lighthouse."}`).Status)
	retrieval := retrievalv1.NewRetrievalServiceClient(bareConn(t, p.GRPC))
	found := func(token, doc string) bool {
		res, err := retrieval.Retrieve(withKey(context.Background(), reader), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: token, TopK: 10})
		require.NoError(t, err)
		for _, c := range res.GetChunks() {
			if c.GetDocumentId() == doc {
				return true
			}
		}
		return false
	}

	outcomes := map[string]int{} // how each race went, logged: both orders must occur for the test to mean something
	for round := range 15 {
		doc, token := fmt.Sprintf("ghost-%d", round), fmt.Sprintf("spectral%dwaypoint", round)
		r := p.do(http.MethodPost, "/v1/documents/text", editor,
			fmt.Sprintf(`{"corpus_id":"c1","document_id":%q,"text":"The %s buoy marks the wreck of the ghost ship."}`, doc, token))
		require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
		p.waitDocument(reader, doc, "succeeded")
		require.True(t, found(token, doc))

		var wg sync.WaitGroup
		var reindex response
		wg.Go(func() {
			reindex = p.do(http.MethodPost, "/v1/documents/"+doc+"/reindex", editor, fmt.Sprintf(`{"chunk_size_chars": %d, "chunk_overlap_chars": 0}`, 400+round))
		})
		deleted := false
		for deadline := time.Now().Add(30 * time.Second); !deleted && time.Now().Before(deadline); {
			d := p.do(http.MethodDelete, "/v1/documents/"+doc, editor, "")
			switch {
			case d.Status == http.StatusOK:
				deleted = true
			case d.Status == http.StatusConflict && d.errorCode() == "DOCUMENT_BUSY": // the reindex is running: retry
				outcomes["delete retried while busy"]++
			default:
				t.Fatalf("round %d: delete answered %d %s", round, d.Status, d.Body)
			}
		}
		require.True(t, deleted, "round %d: the delete never got through", round)
		wg.Wait()
		require.Contains(t, []int{http.StatusAccepted, http.StatusNotFound, http.StatusConflict}, reindex.Status, "round %d: reindex %s", round, reindex.Body)
		outcomes[fmt.Sprintf("reindex %d", reindex.Status)]++
		for range 20 { // while whatever the reindex queued settles
			require.False(t, found(token, doc), "round %d: a deleted document came back (reindex answered %d)", round, reindex.Status)
		}
		require.Equal(t, http.StatusNotFound, p.do(http.MethodGet, "/v1/documents/"+doc, reader, "").Status)
	}
	t.Logf("races: %v", outcomes)
	p.waitDocument(reader, "keeper", "succeeded")
	require.False(t, found("spectral3waypoint", "ghost-3"))

	_, events := p.runStream(reader, `{"session_id":"ghosts","corpus_id":"c1","message":"Which buoy marks the wreck of the ghost ship?"}`)
	for _, e := range events {
		if e.Type == "message.final" {
			for _, c := range e.Data["citations"].([]any) {
				require.NotContains(t, c.(map[string]any)["document_id"], "ghost", "a run cites a deleted document")
			}
		}
	}
}

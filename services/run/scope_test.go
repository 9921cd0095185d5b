package run_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/run"
	"github.com/nexusrag/nexusrag/services/run/generators"
)

// TestScopedKeysRunOnlyOnTheirCorpora: a run on a corpus beyond the key's scope is
// refused before any event, naming the corpus; on its own corpus it runs to done.
func TestScopedKeysRunOnlyOnTheirCorpora(t *testing.T) {
	h := newHarness(t)
	c := h.client(t, run.Config{}, generators.Extractive{}, nil)
	runAs := func(corpora []string) ([]*runv1.RunResponse, error) {
		ctx := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_READER, CorpusIDs: corpora})
		return collectAs(t, ctx, c, &runv1.RunRequest{SessionId: "s-scope", CorpusId: "c1", Message: "When does Agent 2.0 ship?"})
	}

	evs, err := runAs([]string{"c2"})
	require.Empty(t, evs, "no event before the refusal")
	e, _ := apierr.FromStatus(status.Convert(err))
	require.Equal(t, apierr.CodeForbidden, e.Code, err)
	require.Equal(t, "c1", e.Details["corpus_id"])
	require.Empty(t, h.audit.Events(), "a refused run is not audited as invoked")

	evs, err = runAs([]string{"c1", "c2"})
	require.NoError(t, err)
	require.Equal(t, "done", name(evs[len(evs)-1]))
}

package retrieval_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// TestScopedKeysReachOnlyTheirCorpora: a key scoped to one corpus reads, updates and
// retrieves from it as any key would, gets FORBIDDEN naming the corpus on every other
// one (existing or not), and lists only its own. The scope crosses gRPC in the service token.
func TestScopedKeysReachOnlyTheirCorpora(t *testing.T) {
	client, _ := newClient(t)
	editor := as("t1", apiv1.Role_ROLE_EDITOR)
	for _, id := range []string{"allowed", "other"} {
		_, err := client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: id, AllowMissing: true})
		require.NoError(t, err)
	}
	scoped := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_EDITOR, CorpusIDs: []string{"allowed"}})

	list, err := client.ListCorpora(scoped, &retrievalv1.ListCorporaRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetCorpora(), 1)
	require.Equal(t, "allowed", list.GetCorpora()[0].GetCorpusId())
	list, err = client.ListCorpora(editor, &retrievalv1.ListCorporaRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetCorpora(), 2, "an unscoped key lists every corpus")

	_, err = client.GetCorpus(scoped, &retrievalv1.GetCorpusRequest{CorpusId: "allowed"})
	require.NoError(t, err)
	_, err = client.UpdateCorpus(scoped, &retrievalv1.UpdateCorpusRequest{CorpusId: "allowed", Name: proto.String("mine")})
	require.NoError(t, err)
	_, err = client.Retrieve(scoped, &retrievalv1.RetrieveRequest{CorpusId: "allowed", Query: "anything"})
	require.NoError(t, err)

	for _, corpus := range []string{"other", "missing"} {
		calls := map[string]func() error{
			"GetCorpus": func() error {
				_, err := client.GetCorpus(scoped, &retrievalv1.GetCorpusRequest{CorpusId: corpus})
				return err
			},
			"UpdateCorpus": func() error {
				_, err := client.UpdateCorpus(scoped, &retrievalv1.UpdateCorpusRequest{CorpusId: corpus, Name: proto.String("x"), AllowMissing: true})
				return err
			},
			"Retrieve": func() error {
				_, err := client.Retrieve(scoped, &retrievalv1.RetrieveRequest{CorpusId: corpus, Query: "anything"})
				return err
			},
		}
		for name, call := range calls {
			err := call()
			require.Equal(t, apierr.CodeForbidden, code(err), "%s on %s", name, corpus)
			e, _ := apierr.FromStatus(status.Convert(err))
			require.Equal(t, corpus, e.Details["corpus_id"], "%s on %s", name, corpus)
		}
	}
}

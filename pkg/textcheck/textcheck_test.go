package textcheck_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/textcheck"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func TestMessage(t *testing.T) {
	tests := []struct {
		name   string
		msg    proto.Message
		field  string
		reason string
		code   string
	}{
		{"clean", &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "héllo wörld ✓"}, "", "", ""},
		{"NUL in a field", &ingestv1.CreateDocumentRequest{CorpusId: "c\x001"}, "corpus_id", textcheck.ReasonNUL, apierr.CodeInvalidArgument},
		{"invalid UTF-8 in a field", &ingestv1.CreateDocumentRequest{Text: "ok \xff"}, "text", textcheck.ReasonInvalidUTF8, apierr.CodeInvalidArgument},
		{"invalid before NUL", &ingestv1.CreateDocumentRequest{Text: "\xfe\x00"}, "text", textcheck.ReasonInvalidUTF8, apierr.CodeInvalidArgument},
		{"page token", &ingestv1.ListDocumentsRequest{PageToken: "%\xff\x00"}, "page_token", textcheck.ReasonInvalidUTF8, textcheck.CodeInvalidPageToken},
		{"cursor", &governancev1.ListAuditEventsRequest{Cursor: "a\x00"}, "cursor", textcheck.ReasonNUL, textcheck.CodeInvalidCursor},
		{"in a Struct, nested", &retrievalv1.UpdateCorpusRequest{CorpusId: "c", ProviderConfigJson: mustStruct(t, map[string]any{
			"retrieval": map[string]any{"provider": "aws_bedrock_kb", "region": "us\x00east"}})}, "provider_config_json.retrieval.region", textcheck.ReasonNUL, apierr.CodeInvalidArgument},
		{"a Struct key", &retrievalv1.UpdateCorpusRequest{ProviderConfigJson: mustStruct(t, map[string]any{"bad\x00key": 1})},
			"provider_config_json", textcheck.ReasonNUL, apierr.CodeInvalidArgument},
		{"in a Struct list", &retrievalv1.UpdateCorpusRequest{ProviderConfigJson: mustStruct(t, map[string]any{"tags": []any{"a", "b\x00"}})},
			"provider_config_json.tags[1]", textcheck.ReasonNUL, apierr.CodeInvalidArgument},
		{"repeated messages", &retrievalv1.UpsertDocumentsRequest{Documents: []*retrievalv1.DocumentChunks{
			{DocumentId: "d1", Chunks: []*retrievalv1.ChunkInput{{Text: "fine"}}},
			{DocumentId: "d2", Chunks: []*retrievalv1.ChunkInput{{Text: "fine"}, {Text: "bad\x00"}}},
		}}, "documents[1].chunks[1].text", textcheck.ReasonNUL, apierr.CodeInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := textcheck.Message(tt.msg)
			if tt.field == "" {
				require.Nil(t, v)
				return
			}
			require.NotNil(t, v)
			require.Equal(t, tt.field, v.Field)
			require.Equal(t, tt.reason, v.Reason)
			e, ok := apierr.From(v.Error())
			require.True(t, ok)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, tt.field, e.Details["field"])
		})
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "abc", "\x00", "\xff", "é", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		reason, off, ok := textcheck.String(s)
		if ok {
			require.NotContains(t, s, "\x00")
			return
		}
		require.Less(t, off, len(s))
		require.Contains(t, []string{textcheck.ReasonNUL, textcheck.ReasonInvalidUTF8}, reason)
		if reason == textcheck.ReasonNUL {
			require.Equal(t, byte(0), s[off])
		}
	})
}

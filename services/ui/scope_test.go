package ui

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

func TestActivityOfAScopedKey(t *testing.T) {
	md := func(corpus string) *structpb.Struct {
		s, _ := structpb.NewStruct(map[string]any{"corpus_id": corpus})
		return s
	}
	scoped := principal.Principal{TenantID: "t1", CorpusIDs: []string{"mine"}}
	tests := []struct {
		name  string
		event *governancev1.AuditEvent
		shown bool
	}{
		{"its corpus updated", &governancev1.AuditEvent{ResourceType: "corpus", ResourceId: "mine"}, true},
		{"another corpus updated", &governancev1.AuditEvent{ResourceType: "corpus", ResourceId: "theirs"}, false},
		{"a document of its corpus", &governancev1.AuditEvent{ResourceType: "document", ResourceId: "d1", Metadata: md("mine")}, true},
		{"a document of another corpus", &governancev1.AuditEvent{ResourceType: "document", ResourceId: "d2", Metadata: md("theirs")}, false},
		{"a run on another corpus", &governancev1.AuditEvent{ResourceType: "session", ResourceId: "s", Metadata: md("theirs")}, false},
		{"an event about no corpus", &governancev1.AuditEvent{ResourceType: "api_key", ResourceId: "k"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.shown, eventInScope(scoped, tt.event))
			require.True(t, eventInScope(principal.Principal{TenantID: "t1"}, tt.event), "an unscoped key sees every event")
		})
	}
}

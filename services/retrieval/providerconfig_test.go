package retrieval_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// TestProviderConfig is the validation table of provider_config_json.
func TestProviderConfig(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      string // normalized JSON, when valid
		wantField string // offending field, when invalid
	}{
		{"empty object means local", `{}`, `{"retrieval":{"provider":"local_pgvector","top_k_default":5}}`, ""},
		{"null means local", `null`, `{"retrieval":{"provider":"local_pgvector","top_k_default":5}}`, ""},
		{"empty retrieval means local", `{"retrieval":{}}`, `{"retrieval":{"provider":"local_pgvector","top_k_default":5}}`, ""},
		{"local with top_k", `{"retrieval":{"provider":"local_pgvector","top_k_default":8}}`, `{"retrieval":{"provider":"local_pgvector","top_k_default":8}}`, ""},
		{"bedrock", `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB123","region":"us-east-1"}}`,
			`{"retrieval":{"knowledge_base_id":"KB123","provider":"aws_bedrock_kb","region":"us-east-1","top_k_default":5}}`, ""},
		{"vertex", `{"retrieval":{"provider":"gcp_vertex","project":"my-project","location":"global","resource_id":"ds-1","top_k_default":10}}`,
			`{"retrieval":{"location":"global","project":"my-project","provider":"gcp_vertex","resource_id":"ds-1","top_k_default":10}}`, ""},
		{"unknown provider", `{"retrieval":{"provider":"pinecone"}}`, "", "provider_config_json.retrieval.provider"},
		{"provider wrong type", `{"retrieval":{"provider":7}}`, "", "provider_config_json.retrieval.provider"},
		{"retrieval not an object", `{"retrieval":"local"}`, "", "provider_config_json.retrieval"},
		{"unknown section", `{"generation":{}}`, "", "provider_config_json.generation"},
		{"bedrock missing kb", `{"retrieval":{"provider":"aws_bedrock_kb","region":"us-east-1"}}`, "", "provider_config_json.retrieval.knowledge_base_id"},
		{"bedrock missing region", `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB"}}`, "", "provider_config_json.retrieval.region"},
		{"bedrock bad region", `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB","region":"moon"}}`, "", "provider_config_json.retrieval.region"},
		{"bedrock kb wrong type", `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":42,"region":"us-east-1"}}`, "", "provider_config_json.retrieval.knowledge_base_id"},
		{"vertex missing resource", `{"retrieval":{"provider":"gcp_vertex","project":"my-project","location":"global"}}`, "", "provider_config_json.retrieval.resource_id"},
		{"vertex bad project", `{"retrieval":{"provider":"gcp_vertex","project":"X","location":"global","resource_id":"r"}}`, "", "provider_config_json.retrieval.project"},
		{"vertex empty location", `{"retrieval":{"provider":"gcp_vertex","project":"my-project","location":" ","resource_id":"r"}}`, "", "provider_config_json.retrieval.location"},
		{"field of another provider", `{"retrieval":{"provider":"local_pgvector","region":"us-east-1"}}`, "", "provider_config_json.retrieval.region"},
		{"top_k zero", `{"retrieval":{"top_k_default":0}}`, "", "provider_config_json.retrieval.top_k_default"},
		{"top_k above 50", `{"retrieval":{"top_k_default":51}}`, "", "provider_config_json.retrieval.top_k_default"},
		{"top_k fraction", `{"retrieval":{"top_k_default":2.5}}`, "", "provider_config_json.retrieval.top_k_default"},
		{"top_k string", `{"retrieval":{"top_k_default":"5"}}`, "", "provider_config_json.retrieval.top_k_default"},
		{"top_k huge", `{"retrieval":{"top_k_default":1e300}}`, "", "provider_config_json.retrieval.top_k_default"},
		{"local ranking settings", `{"retrieval":{"lexical_weight":1,"vector_weight":0.5,"candidate_depth":100,"feedback":true}}`,
			`{"retrieval":{"provider":"local_pgvector","top_k_default":5,"lexical_weight":1,"vector_weight":0.5,"candidate_depth":100,"feedback":true}}`, ""},
		{"vector arm off", `{"retrieval":{"vector_weight":0}}`, `{"retrieval":{"provider":"local_pgvector","top_k_default":5,"vector_weight":0}}`, ""},
		{"lexical arm off", `{"retrieval":{"lexical_weight":0,"vector_weight":1}}`,
			`{"retrieval":{"provider":"local_pgvector","top_k_default":5,"lexical_weight":0,"vector_weight":1}}`, ""},
		{"both arms off", `{"retrieval":{"lexical_weight":0,"vector_weight":0}}`, "", "provider_config_json.retrieval.vector_weight"},
		{"lexical arm off without a vector weight", `{"retrieval":{"lexical_weight":0}}`, "", "provider_config_json.retrieval.vector_weight"},
		{"negative weight", `{"retrieval":{"lexical_weight":-1}}`, "", "provider_config_json.retrieval.lexical_weight"},
		{"weight above 10", `{"retrieval":{"vector_weight":11}}`, "", "provider_config_json.retrieval.vector_weight"},
		{"weight string", `{"retrieval":{"vector_weight":"0.5"}}`, "", "provider_config_json.retrieval.vector_weight"},
		{"depth too small", `{"retrieval":{"candidate_depth":5}}`, "", "provider_config_json.retrieval.candidate_depth"},
		{"depth too large", `{"retrieval":{"candidate_depth":1001}}`, "", "provider_config_json.retrieval.candidate_depth"},
		{"depth fraction", `{"retrieval":{"candidate_depth":50.5}}`, "", "provider_config_json.retrieval.candidate_depth"},
		{"feedback not a boolean", `{"retrieval":{"feedback":"yes"}}`, "", "provider_config_json.retrieval.feedback"},
		{"ranking of a cloud provider", `{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB","region":"us-east-1","feedback":true}}`,
			"", "provider_config_json.retrieval.feedback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw map[string]any
			require.NoError(t, json.Unmarshal([]byte(tt.in), &raw))
			cfg, err := retrieval.ParseProviderConfig(raw)
			if tt.wantField == "" {
				require.NoError(t, err)
				got, _ := json.Marshal(cfg.JSON())
				require.JSONEq(t, tt.want, string(got))
				return
			}
			require.Error(t, err)
			e, ok := apierr.FromStatus(status.Convert(err))
			require.True(t, ok)
			require.Equal(t, retrieval.CodeInvalidProviderConfig, e.Code)
			require.Equal(t, tt.wantField, e.Details["field"], e.Message)
		})
	}
}

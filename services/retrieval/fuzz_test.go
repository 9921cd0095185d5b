package retrieval

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// FuzzProviderConfig: any JSON is either a normalized configuration that parses back to
// itself, or an invalid-argument error naming a field; never a panic.
func FuzzProviderConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"retrieval":{"provider":"local_pgvector","top_k_default":5}}`,
		`{"retrieval":{"provider":"aws_bedrock_kb","knowledge_base_id":"KB1","region":"us-east-1"}}`,
		`{"retrieval":{"provider":"gcp_vertex","project":"p","location":"global","resource_id":"r"}}`,
		`{"retrieval":{"top_k_default":1e309}}`, `{"retrieval":[]}`, `{"retrieval":{"provider":7}}`,
		`{"retrieval":{"lexical_weight":1,"vector_weight":0,"candidate_depth":100,"feedback":true}}`,
		`{"retrieval":{"lexical_weight":0,"vector_weight":0}}`, `{"retrieval":{"candidate_depth":1e400,"feedback":null}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		cfg, err := ParseProviderConfig(m)
		if err != nil {
			var e *apierr.Error
			if !errors.As(err, &e) || e.GRPCCode != codes.InvalidArgument || e.Details["field"] == "" {
				t.Fatalf("%s: want INVALID_ARGUMENT with a field, got %v", raw, err)
			}
			return
		}
		again, err := ParseProviderConfig(roundTrip(t, cfg.JSON()))
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("%s: normalized %v does not parse back to itself (%v, %v)", raw, cfg.JSON(), again, err)
		}
	})
}

func roundTrip(t *testing.T, v map[string]any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

package redact_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/nexusrag/nexusrag/pkg/redact"
)

// TestPolicy reads like the redaction policy.
func TestPolicy(t *testing.T) {
	tests := []struct {
		key       string
		sensitive bool
	}{
		{"api_key", true}, {"apiKey", true}, {"X-Api-Key", true}, {"apikey", true}, {"x_api_key_id", true},
		{"Authorization", true}, {"authorization_header", true},
		{"token", true}, {"access_token", true}, {"refreshToken", true},
		{"secret", true}, {"clientSecret", true}, {"client-secret", true},
		{"password", true}, {"db.password", true},
		{"text", true}, {"message_text", true}, {"messageText", true},
		{"content", true}, {"document_content", true}, {"content_type", true},
		{"context", false}, {"tokens_used", false}, {"textual", false}, {"key_id", false}, {"name", false},
		{"api", false}, {"key", false}, {"route", false}, {"secretary", false}, {"", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			require.Equal(t, tt.sensitive, redact.Sensitive(tt.key))
		})
	}
}

func TestMapAtAnyDepth(t *testing.T) {
	in := map[string]any{
		"route":   "/v1/run",
		"api_key": map[string]any{"nested": "nrk_abc"},
		"outer": map[string]any{
			"items":         []any{map[string]any{"message_text": "hello", "n": 1}, "plain"},
			"Authorization": "Bearer nrk_x",
		},
		"headers": map[string]string{"X-Api-Key": "k", "Accept": "json"},
	}
	out := redact.Map(in)
	require.Equal(t, map[string]any{
		"route":   "/v1/run",
		"api_key": redact.Placeholder,
		"outer": map[string]any{
			"items":         []any{map[string]any{"message_text": redact.Placeholder, "n": 1}, "plain"},
			"Authorization": redact.Placeholder,
		},
		"headers": map[string]any{"X-Api-Key": redact.Placeholder, "Accept": "json"},
	}, out)
	require.Equal(t, "Bearer nrk_x", in["outer"].(map[string]any)["Authorization"], "input untouched")
}

func TestStructAtAnyDepth(t *testing.T) {
	s, err := structpb.NewStruct(map[string]any{
		"ok":    "kept",
		"list":  []any{map[string]any{"password": "p", "fine": true}},
		"inner": map[string]any{"content": map[string]any{"x": 1}, "tokens_used": 12},
	})
	require.NoError(t, err)
	got := redact.Struct(s).AsMap()
	require.Equal(t, map[string]any{
		"ok":    "kept",
		"list":  []any{map[string]any{"password": redact.Placeholder, "fine": true}},
		"inner": map[string]any{"content": redact.Placeholder, "tokens_used": float64(12)},
	}, got)
}

package principal_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

func TestRequireCorpus(t *testing.T) {
	scoped := principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_ADMIN, CorpusIDs: []string{"a", "b"}}
	open := principal.Principal{TenantID: "t1", KeyID: "k2", Role: apiv1.Role_ROLE_READER}
	tests := []struct {
		name   string
		ctx    context.Context
		corpus string
		denied bool
	}{
		{"scoped key, its corpus", principal.With(context.Background(), scoped), "b", false},
		{"scoped key, another corpus", principal.With(context.Background(), scoped), "c", true},
		{"unscoped key, any corpus", principal.With(context.Background(), open), "c", false},
		{"a service acting for itself", context.Background(), "c", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := principal.RequireCorpus(tt.ctx, tt.corpus)
			if !tt.denied {
				require.NoError(t, err)
				return
			}
			e, ok := apierr.From(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, codes.PermissionDenied, e.GRPCCode)
			require.Equal(t, apierr.CodeForbidden, e.Code)
			require.Equal(t, tt.corpus, e.Details["corpus_id"])
			require.Contains(t, e.Message, tt.corpus)
		})
	}
}

func TestNormalizeCorpusIDs(t *testing.T) {
	many := make([]string, principal.MaxCorpusIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("c%d", i)
	}
	tests := []struct {
		name string
		in   []string
		want []string
		bad  string // corpus named in the error details; "-": an error without one; "": no error
	}{
		{"nil is unrestricted", nil, nil, ""},
		{"empty is unrestricted", []string{}, nil, ""},
		{"sorted", []string{"b", "a.1", "A_2"}, []string{"A_2", "a.1", "b"}, ""},
		{"at the limit", many[:principal.MaxCorpusIDs], nil, ""},
		{"over the limit", many, nil, "-"},
		{"duplicate", []string{"a", "b", "a"}, nil, "a"},
		{"not a corpus id", []string{"a", "../etc"}, nil, "../etc"},
		{"empty id", []string{"a", ""}, nil, "-"},
		{"too long", []string{strings.Repeat("x", 129)}, nil, strings.Repeat("x", 129)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := principal.NormalizeCorpusIDs(tt.in)
			if tt.bad == "" {
				require.NoError(t, err)
				if tt.want != nil {
					require.Equal(t, tt.want, got)
				}
				return
			}
			e, ok := apierr.From(err)
			require.True(t, ok, "%v", err)
			require.Equal(t, codes.InvalidArgument, e.GRPCCode)
			require.Equal(t, principal.CodeCorpusScopeInvalid, e.Code)
			require.Equal(t, "corpus_ids", e.Details["field"])
			if tt.bad != "-" {
				require.Equal(t, tt.bad, e.Details["corpus_id"])
			}
		})
	}
}

package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// TestCorpusScopedKeys creates, updates and authenticates keys scoped to corpora through
// the AuthService, the key cache and the key client of a split process.
func TestCorpusScopedKeys(t *testing.T) {
	store := NewStore(pgtest.NewPool(t, Migrations()))
	cache := NewKeyCache(store, logging.Discard(), time.Second, time.Second)
	rec := &audittest.Recorder{}
	srv := NewServer(store, cache, rec)
	admin := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "adm", Role: apiv1.Role_ROLE_ADMIN})

	created, err := srv.CreateApiKey(admin, &gatewayv1.CreateApiKeyRequest{Name: "scoped", Role: "reader", CorpusIds: []string{"b", "a"}})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, created.GetApiKey().GetCorpusIds())
	ev := rec.Events()[len(rec.Events())-1]
	require.Equal(t, audit.TypeSelfServeKeyCreated, ev.Type)
	require.Equal(t, []string{"a", "b"}, ev.Metadata["corpus_ids"])

	p, err := cache.Authenticate(context.Background(), created.GetSecret())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, p.CorpusIDs)

	// A split process asking the gateway gets the scope too.
	gs := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	gs.Register(&gatewayv1.AuthService_ServiceDesc, srv)
	conn, stop, err := grpcx.InProcess(gs)
	require.NoError(t, err)
	defer stop()
	kp, err := NewKeyClient(gatewayv1.NewAuthServiceClient(conn), time.Nanosecond).Authenticate(context.Background(), created.GetSecret())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, kp.CorpusIDs)

	id := created.GetApiKey().GetKeyId()
	upd, err := srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, CorpusIds: []string{"c"}})
	require.NoError(t, err)
	require.Equal(t, "scoped", upd.GetApiKey().GetName(), "a scope change keeps the name")
	require.Equal(t, []string{"c"}, upd.GetApiKey().GetCorpusIds())
	p, err = cache.Authenticate(context.Background(), created.GetSecret())
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, p.CorpusIDs, "the replica that served the update knows at once")

	upd, err = srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, Name: proto.String("renamed")})
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, upd.GetApiKey().GetCorpusIds(), "a rename keeps the scope")

	upd, err = srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, ClearCorpusIds: true})
	require.NoError(t, err)
	require.Empty(t, upd.GetApiKey().GetCorpusIds())
	ev = rec.Events()[len(rec.Events())-1]
	require.Equal(t, audit.TypeAPIKeyUpdated, ev.Type)
	require.Equal(t, "all", ev.Metadata["corpus_ids"])

	list, err := srv.ListApiKeys(admin, &gatewayv1.ListApiKeysRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetApiKeys(), 1)
}

func TestCorpusScopeRules(t *testing.T) {
	store := NewStore(pgtest.NewPool(t, Migrations()))
	srv := NewServer(store, NewKeyCache(store, logging.Discard(), time.Second, time.Second), &audittest.Recorder{})
	admin := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "adm", Role: apiv1.Role_ROLE_ADMIN})
	scopedAdmin := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "sadm", Role: apiv1.Role_ROLE_ADMIN, CorpusIDs: []string{"a", "b"}})
	k, err := srv.CreateApiKey(admin, &gatewayv1.CreateApiKeyRequest{Name: "k", Role: "reader"})
	require.NoError(t, err)
	id := k.GetApiKey().GetKeyId()

	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"duplicate corpus", func() error {
			_, err := srv.CreateApiKey(admin, &gatewayv1.CreateApiKeyRequest{Name: "k", Role: "reader", CorpusIds: []string{"a", "a"}})
			return err
		}, principal.CodeCorpusScopeInvalid},
		{"malformed corpus id", func() error {
			_, err := srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, CorpusIds: []string{"no spaces"}})
			return err
		}, principal.CodeCorpusScopeInvalid},
		{"corpus_ids and clear_corpus_ids", func() error {
			_, err := srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, CorpusIds: []string{"a"}, ClearCorpusIds: true})
			return err
		}, principal.CodeCorpusScopeInvalid},
		{"nothing to update", func() error {
			_, err := srv.UpdateApiKey(admin, &gatewayv1.UpdateApiKeyRequest{KeyId: id})
			return err
		}, apierr.CodeInvalidArgument},
		{"a scoped admin creates an unscoped key", func() error {
			_, err := srv.CreateApiKey(scopedAdmin, &gatewayv1.CreateApiKeyRequest{Name: "k", Role: "reader"})
			return err
		}, apierr.CodeForbidden},
		{"a scoped admin creates a key beyond its corpora", func() error {
			_, err := srv.CreateApiKey(scopedAdmin, &gatewayv1.CreateApiKeyRequest{Name: "k", Role: "reader", CorpusIds: []string{"a", "c"}})
			return err
		}, apierr.CodeForbidden},
		{"a scoped admin clears a scope", func() error {
			_, err := srv.UpdateApiKey(scopedAdmin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, ClearCorpusIds: true})
			return err
		}, apierr.CodeForbidden},
		{"a scoped admin scopes a key beyond its corpora", func() error {
			_, err := srv.UpdateApiKey(scopedAdmin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, CorpusIds: []string{"c"}})
			return err
		}, apierr.CodeForbidden},
		{"a scoped admin scopes a key within its corpora", func() error {
			_, err := srv.UpdateApiKey(scopedAdmin, &gatewayv1.UpdateApiKeyRequest{KeyId: id, CorpusIds: []string{"a"}})
			return err
		}, ""},
		{"a scoped admin creates a key within its corpora", func() error {
			_, err := srv.CreateApiKey(scopedAdmin, &gatewayv1.CreateApiKeyRequest{Name: "k", Role: "reader", CorpusIds: []string{"b"}})
			return err
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.code == "" {
				require.NoError(t, err)
				return
			}
			require.Equal(t, tt.code, authCode(t, err))
		})
	}
}

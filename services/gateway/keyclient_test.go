package gateway

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
)

// countingAuth counts the AuthenticateApiKey calls that reach the gateway.
type countingAuth struct {
	gatewayv1.AuthServiceClient
	calls atomic.Int32
}

func (c *countingAuth) AuthenticateApiKey(ctx context.Context, in *gatewayv1.AuthenticateApiKeyRequest, opts ...grpc.CallOption) (*gatewayv1.AuthenticateApiKeyResponse, error) {
	c.calls.Add(1)
	return c.AuthServiceClient.AuthenticateApiKey(ctx, in, opts...)
}

// TestKeyClientAsksTheGateway runs what a split process does with an operator's key:
// it asks the gateway's AuthService (over real gRPC, with service tokens), remembers the
// answer for its TTL, and sees a revocation within it.
func TestKeyClientAsksTheGateway(t *testing.T) {
	ctx := context.Background()
	store := NewStore(pgtest.NewPool(t, Migrations()))
	k, plaintext, err := store.CreateKey(ctx, "t1", "ops", "admin", nil)
	require.NoError(t, err)
	cache := NewKeyCache(store, logging.Discard(), 100*time.Millisecond, time.Second)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&gatewayv1.AuthService_ServiceDesc, NewServer(store, cache, &audittest.Recorder{}))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	defer stop()
	auth := &countingAuth{AuthServiceClient: gatewayv1.NewAuthServiceClient(conn)}
	const ttl = 200 * time.Millisecond
	client := NewKeyClient(auth, ttl)

	p, err := client.Authenticate(ctx, plaintext)
	require.NoError(t, err)
	require.Equal(t, "t1", p.TenantID)
	require.Equal(t, k.ID, p.KeyID)
	require.Equal(t, apiv1.Role_ROLE_ADMIN, p.Role)
	_, err = client.Authenticate(ctx, plaintext)
	require.NoError(t, err)
	require.EqualValues(t, 1, auth.calls.Load(), "the second lookup is answered from memory")

	wrongSecret := plaintext[:len(plaintext)-1] + "a"
	if wrongSecret == plaintext {
		wrongSecret = plaintext[:len(plaintext)-1] + "b"
	}
	_, err = client.Authenticate(ctx, wrongSecret)
	require.Equal(t, CodeAuthInvalid, authCode(t, err))
	_, err = client.Authenticate(ctx, "nrk_garbage")
	require.Equal(t, CodeAuthInvalid, authCode(t, err), "malformed keys never leave the process")
	require.EqualValues(t, 2, auth.calls.Load())

	revoked, err := store.RevokeKey(ctx, "t1", k.ID)
	require.NoError(t, err)
	cache.Apply(revoked)
	start := time.Now()
	require.Eventually(t, func() bool {
		_, err := client.Authenticate(ctx, plaintext)
		return err != nil && authCode(t, err) == CodeAuthRevoked
	}, 5*time.Second, 10*time.Millisecond)
	require.Less(t, time.Since(start), ttl+time.Second, "refused within the client's TTL")
}

func TestKeyClientWithoutGatewayIsUnavailable(t *testing.T) {
	conn, err := grpcx.Dial("127.0.0.1:1", grpcx.ClientOptions{})
	require.NoError(t, err)
	defer conn.Close()
	client := NewKeyClient(gatewayv1.NewAuthServiceClient(conn), time.Second)
	id, plaintext, _ := newKey()
	_, err = client.Authenticate(context.Background(), plaintext)
	require.Equal(t, CodeAuthUnavailable, authCode(t, err), id)
}

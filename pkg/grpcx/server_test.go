package grpcx_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/textcheck"
)

// auditFake answers ListAuditEvents according to the tenant it is called for, so each
// case can choose the handler's behaviour; RecordEvents is internal (no principal).
type auditFake struct {
	governancev1.UnimplementedAuditServiceServer
	seen chan principal.Principal
}

func (f *auditFake) ListAuditEvents(ctx context.Context, _ *governancev1.ListAuditEventsRequest) (*governancev1.ListAuditEventsResponse, error) {
	p, _ := principal.From(ctx)
	f.seen <- p
	switch p.TenantID {
	case "plain-error":
		return nil, errors.New("pq: relation secret_table does not exist")
	case "domain-error":
		return nil, apierr.New(codes.FailedPrecondition, "LEGAL_HOLD_ACTIVE", "held", "hold_id", "h1")
	case "panic":
		panic("boom")
	}
	return &governancev1.ListAuditEventsResponse{NextCursor: requestid.From(ctx)}, nil
}

func (f *auditFake) RecordEvents(context.Context, *governancev1.RecordEventsRequest) (*governancev1.RecordEventsResponse, error) {
	return &governancev1.RecordEventsResponse{Recorded: 1}, nil
}

type forbidden struct {
	method string
	need   string
}

// fakeKeys accepts two API keys of tenant t1: an admin's and a reader's.
type fakeKeys struct{}

func (fakeKeys) Authenticate(_ context.Context, key string) (principal.Principal, error) {
	switch key {
	case "nrk_admin":
		return principal.Principal{TenantID: "t1", KeyID: "admin", Role: apiv1.Role_ROLE_ADMIN}, nil
	case "nrk_reader":
		return principal.Principal{TenantID: "t1", KeyID: "reader", Role: apiv1.Role_ROLE_READER}, nil
	}
	return principal.Principal{}, apierr.New(codes.Unauthenticated, apierr.CodeAuthInvalid, "the API key is not valid")
}

type testServer struct {
	srv    *grpcx.Server
	keys   *svcauth.Keyring
	lis    *grpcx.MemListener
	fake   *auditFake
	denied chan forbidden
}

func newServer(t *testing.T, log *slog.Logger) *testServer {
	t.Helper()
	ts := &testServer{keys: svcauth.Ephemeral(), lis: grpcx.NewMemListener(), fake: &auditFake{seen: make(chan principal.Principal, 1)}, denied: make(chan forbidden, 4)}
	ts.srv = grpcx.NewServer(grpcx.ServerOptions{Log: log, Keys: ts.keys, APIKeys: fakeKeys{},
		OnForbidden: func(_ context.Context, m string, _ principal.Principal, need string) { ts.denied <- forbidden{m, need} }})
	ts.srv.Register(&governancev1.AuditService_ServiceDesc, ts.fake)
	go func() { _ = ts.srv.Serve(ts.lis) }() // the server other processes and operators reach
	t.Cleanup(ts.srv.Close)
	return ts
}

// dial connects with the given issuer (nil: no credentials).
func (ts *testServer) dial(t *testing.T, tokens *svcauth.Issuer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.DialMem(ts.lis, grpcx.ClientOptions{Tokens: tokens})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func newClient(t *testing.T) (governancev1.AuditServiceClient, *auditFake, chan forbidden) {
	t.Helper()
	ts := newServer(t, logging.Discard())
	return governancev1.NewAuditServiceClient(ts.dial(t, svcauth.NewIssuer(ts.keys, "test", time.Minute))), ts.fake, ts.denied
}

func TestAuthorizationFollowsTheContract(t *testing.T) {
	client, fake, denied := newClient(t)
	tests := []struct {
		name      string
		principal *principal.Principal
		wantCode  codes.Code
		wantAPI   string
	}{
		{name: "service token without principal", wantCode: codes.Unauthenticated, wantAPI: apierr.CodeUnauthenticated},
		{name: "reader below admin", principal: &principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_READER}, wantCode: codes.PermissionDenied, wantAPI: apierr.CodeForbidden},
		{name: "editor below admin", principal: &principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_EDITOR}, wantCode: codes.PermissionDenied, wantAPI: apierr.CodeForbidden},
		{name: "admin", principal: &principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_ADMIN}, wantCode: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := requestid.With(context.Background(), "req-42")
			if tt.principal != nil {
				ctx = principal.With(ctx, *tt.principal)
			}
			resp, err := client.ListAuditEvents(ctx, &governancev1.ListAuditEventsRequest{})
			require.Equal(t, tt.wantCode, status.Code(err), "%v", err)
			if tt.wantCode == codes.OK {
				require.Equal(t, *tt.principal, <-fake.seen, "principal travels in the service token")
				require.Equal(t, "req-42", resp.GetNextCursor(), "request id travels in the service token")
				return
			}
			e, ok := apierr.FromStatus(status.Convert(err))
			require.True(t, ok)
			require.Equal(t, tt.wantAPI, e.Code)
			if tt.wantCode == codes.PermissionDenied {
				require.Equal(t, forbidden{"/nexusrag.governance.v1.AuditService/ListAuditEvents", "admin"}, <-denied)
			}
		})
	}
}

// planOf is an entitlement checker with a plan per tenant.
type planOf map[string]entitlements.Static

func (p planOf) Require(ctx context.Context, tenant, feature string) error {
	return p[tenant].Require(ctx, tenant, feature)
}

// A method's feature is checked against the caller's tenant's plan, after its role.
func TestFeaturesFollowTheContract(t *testing.T) {
	ts := newServer(t, logging.Discard())
	ts.srv.SetEntitlements(planOf{"pro": {entitlements.AuditAccess}, "free": {entitlements.RetrievalLocal}})
	client := governancev1.NewAuditServiceClient(ts.dial(t, svcauth.NewIssuer(ts.keys, "test", time.Minute)))
	as := func(tenant string, role apiv1.Role) context.Context {
		return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k", Role: role})
	}
	_, err := client.ListAuditEvents(as("pro", apiv1.Role_ROLE_ADMIN), &governancev1.ListAuditEventsRequest{})
	require.NoError(t, err)
	<-ts.fake.seen

	_, err = client.ListAuditEvents(as("free", apiv1.Role_ROLE_ADMIN), &governancev1.ListAuditEventsRequest{})
	e, ok := apierr.FromStatus(status.Convert(err))
	require.True(t, ok)
	require.Equal(t, codes.PermissionDenied, e.GRPCCode)
	require.Equal(t, entitlements.CodeFeatureNotEnabled, e.Code)
	require.Equal(t, entitlements.AuditAccess, e.Details["feature_key"])
	require.Equal(t, forbidden{"/nexusrag.governance.v1.AuditService/ListAuditEvents", entitlements.AuditAccess}, <-ts.denied)

	// The role comes first: a reader of a tenant without the feature hears about the role.
	_, err = client.ListAuditEvents(as("free", apiv1.Role_ROLE_READER), &governancev1.ListAuditEventsRequest{})
	e, _ = apierr.FromStatus(status.Convert(err))
	require.Equal(t, apierr.CodeForbidden, e.Code)
	<-ts.denied
	// Internal methods name no feature: service tokens pass whatever the plan.
	_, err = client.RecordEvents(context.Background(), &governancev1.RecordEventsRequest{})
	require.NoError(t, err)
	require.Equal(t, entitlements.AuditAccess, grpcx.MethodAccess("/nexusrag.governance.v1.AuditService/ListAuditEvents").GetFeature())
}

// TestCredentials is the table of what a call may present and what it gets.
func TestCredentials(t *testing.T) {
	ts := newServer(t, logging.Discard())
	own := svcauth.NewIssuer(ts.keys, "test", time.Minute)
	stranger := svcauth.NewIssuer(svcauth.Ephemeral(), "stranger", time.Minute)
	bare := ts.dial(t, nil)
	wrongAudience, err := ts.keys.Sign(svcauth.Claims{Audience: "retrieval", IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	expired, err := ts.keys.Sign(svcauth.Claims{Audience: "governance", IssuedAt: time.Now().Add(-time.Hour), ExpiresAt: time.Now().Add(-time.Hour + time.Minute)})
	require.NoError(t, err)
	const list, record = "/nexusrag.governance.v1.AuditService/ListAuditEvents", "/nexusrag.governance.v1.AuditService/RecordEvents"

	tests := []struct {
		name     string
		conn     *grpc.ClientConn
		md       []string // outgoing metadata pairs
		method   string
		wantCode codes.Code
		wantAPI  string
	}{
		{"nothing", bare, nil, list, codes.Unauthenticated, apierr.CodeAuthMissing},
		{"forged principal metadata", bare, []string{"x-nexusrag-tenant-id", "t1", "x-nexusrag-role", "admin", "x-nexusrag-key-id", "k"}, list, codes.Unauthenticated, apierr.CodeAuthMissing},
		{"forged principal metadata, internal method", bare, []string{"x-nexusrag-tenant-id", "t1", "x-nexusrag-role", "admin"}, record, codes.Unauthenticated, apierr.CodeAuthMissing},
		{"not a bearer", bare, []string{"authorization", "Basic dTpw"}, list, codes.Unauthenticated, apierr.CodeAuthInvalid},
		{"two credentials", bare, []string{"authorization", "Bearer nrk_admin", "authorization", "Bearer nrk_admin"}, list, codes.Unauthenticated, apierr.CodeAuthInvalid},
		{"unknown API key", bare, []string{"authorization", "Bearer nrk_nope"}, list, codes.Unauthenticated, apierr.CodeAuthInvalid},
		{"reader key on an admin method", bare, []string{"authorization", "Bearer nrk_reader"}, list, codes.PermissionDenied, apierr.CodeForbidden},
		{"admin key", bare, []string{"authorization", "Bearer nrk_admin"}, list, codes.OK, ""},
		{"admin key on an internal method", bare, []string{"authorization", "Bearer nrk_admin"}, record, codes.PermissionDenied, apierr.CodeForbidden},
		{"service token on an internal method", ts.dial(t, own), nil, record, codes.OK, ""},
		{"token of an untrusted key", ts.dial(t, stranger), nil, record, codes.Unauthenticated, apierr.CodeServiceTokenInvalid},
		{"token for another service", bare, []string{"authorization", "Bearer " + wrongAudience}, record, codes.Unauthenticated, apierr.CodeServiceTokenInvalid},
		{"expired token", bare, []string{"authorization", "Bearer " + expired}, record, codes.Unauthenticated, apierr.CodeServiceTokenInvalid},
		// grpc-gateway forwards a REST client's Authorization as metadata; the token replaces it.
		{"client's API key replaced by the token", ts.dial(t, own), []string{"authorization", "Bearer nrk_admin"}, record, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(context.Background(), tt.md...)
			var err error
			if tt.method == list {
				_, err = governancev1.NewAuditServiceClient(tt.conn).ListAuditEvents(ctx, &governancev1.ListAuditEventsRequest{})
			} else {
				_, err = governancev1.NewAuditServiceClient(tt.conn).RecordEvents(ctx, &governancev1.RecordEventsRequest{})
			}
			require.Equal(t, tt.wantCode, status.Code(err), "%v", err)
			if tt.wantCode == codes.OK {
				if tt.method == list {
					require.Equal(t, principal.Principal{TenantID: "t1", KeyID: "admin", Role: apiv1.Role_ROLE_ADMIN}, <-ts.fake.seen)
				}
				return
			}
			e, ok := apierr.FromStatus(status.Convert(err))
			require.True(t, ok)
			require.Equal(t, tt.wantAPI, e.Code, e.Message)
		})
	}
	require.Equal(t, forbidden{list, "admin"}, <-ts.denied)
	require.Equal(t, forbidden{record, grpcx.NeedService}, <-ts.denied, "an API key on an internal method is audited as forbidden")
}

func TestHealthIsAnonymousAndReflectionIsNot(t *testing.T) {
	var logs strings.Builder
	ts := newServer(t, slog.New(slog.NewTextHandler(&logs, nil)))
	bare := ts.dial(t, nil)
	ctx := context.Background()
	h, err := healthpb.NewHealthClient(bare).Check(ctx, &healthpb.HealthCheckRequest{Service: "nexusrag.governance.v1.AuditService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus())
	_, err = healthpb.NewHealthClient(bare).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err), "an unknown service is NotFound, not Internal")
	require.NotContains(t, logs.String(), "level=ERROR")

	list := func(conn *grpc.ClientConn, md ...string) error {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(metadata.AppendToOutgoingContext(ctx, md...))
		require.NoError(t, err)
		_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}) // io.EOF when refused: Recv tells why
		_, err = stream.Recv()
		return err
	}
	require.Equal(t, codes.Unauthenticated, status.Code(list(bare)))
	require.NoError(t, list(bare, "authorization", "Bearer nrk_reader"), "any valid API key lists services")
	require.NoError(t, list(ts.dial(t, svcauth.NewIssuer(ts.keys, "test", time.Minute))))
}

func TestAudience(t *testing.T) {
	for method, want := range map[string]string{
		"/nexusrag.retrieval.v1.RetrievalService/Retrieve":               "retrieval",
		"/nexusrag.governance.v1.AuditService/RecordEvents":              "governance",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      "grpc.reflection.v1.ServerReflection",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": "grpc.reflection.v1alpha.ServerReflection",
	} {
		require.Equal(t, want, grpcx.Audience(method), method)
	}
}

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer nrk_x", "bearer  eyJ.a.b", "Basic x", "", "Bearer", "Bearer a b", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		cred, err := grpcx.ParseBearer(v)
		if err != nil {
			return
		}
		require.NotEmpty(t, cred)
		require.NotContains(t, cred, " ")
		require.Contains(t, v, cred)
	})
}

func TestErrorsAreNormalized(t *testing.T) {
	client, fake, _ := newClient(t)
	tests := []struct {
		tenant      string
		wantCode    codes.Code
		wantAPI     string
		wantMessage string
	}{
		{tenant: "plain-error", wantCode: codes.Internal, wantAPI: apierr.CodeInternal, wantMessage: "internal error"},
		{tenant: "panic", wantCode: codes.Internal, wantAPI: apierr.CodeInternal, wantMessage: "internal error"},
		{tenant: "domain-error", wantCode: codes.FailedPrecondition, wantAPI: "LEGAL_HOLD_ACTIVE", wantMessage: "held"},
	}
	for _, tt := range tests {
		t.Run(tt.tenant, func(t *testing.T) {
			ctx := principal.With(context.Background(), principal.Principal{TenantID: tt.tenant, Role: apiv1.Role_ROLE_ADMIN})
			_, err := client.ListAuditEvents(ctx, &governancev1.ListAuditEventsRequest{})
			<-fake.seen
			st := status.Convert(err)
			require.Equal(t, tt.wantCode, st.Code())
			require.Equal(t, tt.wantMessage, st.Message(), "internal causes never reach the caller")
			e, ok := apierr.FromStatus(st)
			require.True(t, ok)
			require.Equal(t, tt.wantAPI, e.Code)
		})
	}
}

func TestMethodAccessReadsTheOption(t *testing.T) {
	require.Equal(t, apiv1.Role_ROLE_ADMIN, grpcx.MethodAccess("/nexusrag.governance.v1.AuditService/ListAuditEvents").GetMinRole())
	require.True(t, grpcx.MethodAccess("/nexusrag.governance.v1.AuditService/RecordEvents").GetInternal())
	require.Nil(t, grpcx.MethodAccess("/nexusrag.governance.v1.AuditService/Nope"))
}

func TestInternalErrorCauseIsLoggedNotReturned(t *testing.T) {
	var logs strings.Builder
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	fake := &auditFake{seen: make(chan principal.Principal, 1)}
	srv.Register(&governancev1.AuditService_ServiceDesc, fake)
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	defer stop()
	ctx := principal.With(context.Background(), principal.Principal{TenantID: "plain-error", Role: apiv1.Role_ROLE_ADMIN})
	_, err = governancev1.NewAuditServiceClient(conn).ListAuditEvents(ctx, &governancev1.ListAuditEventsRequest{})
	<-fake.seen
	require.Equal(t, "internal error", status.Convert(err).Message())
	require.Contains(t, logs.String(), "relation secret_table does not exist", "the operator sees the cause")
}

// TestStringsNoServiceCanStore: a request with a NUL is refused where it is received,
// naming the field (whatever the client did), and one that is not UTF-8 is refused by
// the client before it is encoded.
func TestStringsNoServiceCanStore(t *testing.T) {
	ts := newServer(t, logging.Discard())
	ctx := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k", Role: apiv1.Role_ROLE_ADMIN})

	// A client without NexusRAG's interceptors: only the server stands in the way.
	raw, err := grpc.NewClient("passthrough:///mem", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ts.lis.DialContext(ctx) }))
	require.NoError(t, err)
	defer raw.Close()
	_, err = governancev1.NewAuditServiceClient(raw).ListAuditEvents(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer nrk_admin"),
		&governancev1.ListAuditEventsRequest{Actor: "a\x00b"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	e, _ := apierr.From(err)
	require.Equal(t, "actor", e.Details["field"])
	require.Equal(t, textcheck.ReasonNUL, e.Details["reason"])

	_, err = governancev1.NewAuditServiceClient(ts.dial(t, svcauth.NewIssuer(ts.keys, "test", time.Minute))).ListAuditEvents(ctx,
		&governancev1.ListAuditEventsRequest{Cursor: "\xff"})
	e, _ = apierr.From(err)
	require.Equal(t, textcheck.CodeInvalidCursor, e.Code, "refused before encoding, as a bad cursor")
}

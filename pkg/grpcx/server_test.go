package grpcx_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
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
	need   apiv1.Role
}

func newClient(t *testing.T) (governancev1.AuditServiceClient, *auditFake, chan forbidden) {
	t.Helper()
	denied := make(chan forbidden, 4)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard(), OnForbidden: func(_ context.Context, m string, _ principal.Principal, need apiv1.Role) {
		denied <- forbidden{m, need}
	}})
	fake := &auditFake{seen: make(chan principal.Principal, 1)}
	srv.Register(&governancev1.AuditService_ServiceDesc, fake)
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return governancev1.NewAuditServiceClient(conn), fake, denied
}

func TestAuthorizationFollowsTheContract(t *testing.T) {
	client, fake, denied := newClient(t)
	tests := []struct {
		name      string
		principal *principal.Principal
		wantCode  codes.Code
		wantAPI   string
	}{
		{name: "no principal", wantCode: codes.Unauthenticated, wantAPI: apierr.CodeUnauthenticated},
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
				require.Equal(t, *tt.principal, <-fake.seen, "principal travels as metadata")
				require.Equal(t, "req-42", resp.GetNextCursor(), "request id travels as metadata")
				return
			}
			e, ok := apierr.FromStatus(status.Convert(err))
			require.True(t, ok)
			require.Equal(t, tt.wantAPI, e.Code)
			if tt.wantCode == codes.PermissionDenied {
				require.Equal(t, forbidden{"/nexusrag.governance.v1.AuditService/ListAuditEvents", apiv1.Role_ROLE_ADMIN}, <-denied)
			}
		})
	}
}

func TestInternalMethodNeedsNoPrincipal(t *testing.T) {
	client, _, _ := newClient(t)
	resp, err := client.RecordEvents(context.Background(), &governancev1.RecordEventsRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, resp.GetRecorded())
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

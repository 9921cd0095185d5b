package grpcx

import (
	"context"
	"crypto/tls"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
	"github.com/nexusrag/nexusrag/pkg/textcheck"
)

// ClientOptions say how a process calls services.
type ClientOptions struct {
	// Tokens mints the service token every call carries (the principal and request id
	// of the call's context travel inside it). Nil sends calls without credentials:
	// only health answers those.
	Tokens *svcauth.Issuer
	// TLS, when set, encrypts the connection and verifies the server's certificate.
	TLS *tls.Config
	// Telemetry, when set, propagates the trace context.
	Telemetry *telemetry.Telemetry
}

// Dial returns a client connection to a NexusRAG service at target (host:port). The
// connection is lazy: an unreachable target fails calls, not Dial.
func Dial(target string, o ClientOptions, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	transport := insecure.NewCredentials()
	if o.TLS != nil {
		transport = credentials.NewTLS(o.TLS)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}
	out := &outgoingMD{tokens: o.Tokens}
	switch tel := o.Telemetry; {
	case tel != nil && tel.Tracing():
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tel.Tracer), otelgrpc.WithPropagators(tel.Propagator))))
	case tel != nil: // no spans: carry the trace context only
		out.propagator = tel.Propagator
	}
	opts = append(opts,
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if err := checkText(req); err != nil {
				return err
			}
			ctx, err := out.attach(ctx, method)
			if err != nil {
				return err
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			ctx, err := out.attach(ctx, method)
			if err != nil {
				return nil, err
			}
			cs, err := streamer(ctx, desc, cc, method, opts...)
			if err != nil {
				return nil, err
			}
			return checkedClientStream{cs}, nil
		}))
	conn, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", target, err)
	}
	return conn, nil
}

// outgoingMD is what every call sends as metadata: the service token (health needs
// none), the request id, and, when no spans are made, the trace context.
type outgoingMD struct {
	tokens     *svcauth.Issuer
	propagator propagation.TextMapPropagator
}

// attach writes the call's metadata. A service token replaces any authorization in ctx's
// outgoing metadata: grpc-gateway forwards a REST client's Authorization header as
// metadata, and an API key must never travel beyond the edge. Without an issuer (tools,
// tests) the caller's own authorization is sent. One copy of the metadata per call.
func (o *outgoingMD) attach(ctx context.Context, method string) (context.Context, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	if o.tokens != nil && !isHealth(method) {
		var p *principal.Principal
		if pp, ok := principal.From(ctx); ok {
			p = &pp
		}
		tok, err := o.tokens.Token(Audience(method), p)
		if err != nil {
			return ctx, err
		}
		md.Set(mdAuthorization, "Bearer "+tok)
	}
	if id := requestid.From(ctx); id != "" {
		md.Set(requestid.MD, id)
	}
	if o.propagator != nil {
		o.propagator.Inject(ctx, metadataCarrier(md))
	}
	return metadata.NewOutgoingContext(ctx, md), nil
}

// checkText refuses, before it is encoded, a request with a string no service can store:
// not UTF-8 (protobuf cannot encode it, and would fail the call as INTERNAL) or with NUL.
func checkText(msg any) error {
	if m, ok := msg.(proto.Message); ok {
		if v := textcheck.Message(m); v != nil {
			return v.Error()
		}
	}
	return nil
}

// checkedClientStream checks what a client stream sends.
type checkedClientStream struct{ grpc.ClientStream }

func (s checkedClientStream) SendMsg(m any) error {
	if err := checkText(m); err != nil {
		return err
	}
	return s.ClientStream.SendMsg(m)
}

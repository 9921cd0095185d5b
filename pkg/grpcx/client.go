package grpcx

import (
	"context"
	"crypto/tls"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
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
	if tokens := o.Tokens; tokens != nil {
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				ctx, err := outgoing(ctx, tokens, method)
				if err != nil {
					return err
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			}),
			grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				ctx, err := outgoing(ctx, tokens, method)
				if err != nil {
					return nil, err
				}
				return streamer(ctx, desc, cc, method, opts...)
			}))
	}
	if tel := o.Telemetry; tel != nil {
		opts = append(opts, grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(tel.Tracer), otelgrpc.WithPropagators(tel.Propagator))))
	}
	conn, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", target, err)
	}
	return conn, nil
}

// outgoing attaches the call's service token; health needs none.
func outgoing(ctx context.Context, tokens *svcauth.Issuer, method string) (context.Context, error) {
	if isHealth(method) {
		return ctx, nil
	}
	return withToken(ctx, tokens, method)
}

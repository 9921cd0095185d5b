package grpcx

import (
	"context"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// MemListener is an in-memory listener: services of one process call each other
// through it with every interceptor of a network call (credentials included) but no
// TCP stack.
type MemListener struct{ *bufconn.Listener }

// NewMemListener returns a listener to serve with Server.ServeMem and dial with DialMem.
func NewMemListener() *MemListener { return &MemListener{bufconn.Listen(1 << 20)} }

// DialMem returns a client connection to the server serving lis.
func DialMem(lis *MemListener, o ClientOptions) (*grpc.ClientConn, error) {
	o.TLS = nil // memory needs no encryption
	return Dial("passthrough:///in-memory", o,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
}

// InProcess serves srv on an in-memory listener and returns a client connection to it
// whose calls carry tokens of the server's own keyring, and a function that closes both.
// Operator commands use it to call a service's gRPC API without a running platform;
// tests use it to exercise the real interceptors.
func InProcess(srv *Server) (*grpc.ClientConn, func(), error) {
	lis := NewMemListener()
	go func() { _ = srv.ServeMem(lis) }()
	conn, err := DialMem(lis, ClientOptions{Tokens: svcauth.NewIssuer(srv.keys, "in-process", time.Minute)})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return conn, func() { _ = conn.Close(); srv.Close() }, nil
}

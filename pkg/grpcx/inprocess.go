package grpcx

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
)

// InProcess serves srv on an in-memory listener and returns a client connection to it
// (with the same client interceptors as Dial) and a function that closes both. Operator
// commands use it to call a service's gRPC API without a running platform; tests use it
// to exercise the real interceptors.
func InProcess(srv *Server) (*grpc.ClientConn, func(), error) {
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := Dial("passthrough:///inprocess", nil,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		srv.GRPC.Stop()
		return nil, nil, err
	}
	return conn, func() { _ = conn.Close(); srv.GRPC.Stop() }, nil
}

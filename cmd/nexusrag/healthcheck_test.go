package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestHealthcheckCommand: the compose health checks run `nexusrag healthcheck`, which
// passes only while the process's gRPC port answers SERVING, and reaches a port bound to
// every interface through loopback.
func TestHealthcheckCommand(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	_, port, err := net.SplitHostPort(lis.Addr().String())
	require.NoError(t, err)

	check := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return checkHealth(ctx, healthcheckConfig{GRPCAddr: addr})
	}
	require.NoError(t, check(lis.Addr().String()))
	require.NoError(t, check(":"+port), "GRPC_ADDR=:9000 style: asked on loopback")
	require.NoError(t, check("0.0.0.0:"+port))

	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	require.ErrorContains(t, check(lis.Addr().String()), "NOT_SERVING")

	require.ErrorContains(t, check("9000"), "GRPC_ADDR")
	srv.Stop()
	require.ErrorContains(t, check(lis.Addr().String()), "health check of 127.0.0.1:"+port)
}

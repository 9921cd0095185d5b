// Package gateway is NexusRAG's public edge: REST /v1 over the services' gRPC contracts
// (grpc-gateway), API key authentication, envelopes and error mapping, legacy aliases,
// rate limits, idempotency, the Server-Sent Events of /v1/run, health and API docs. It
// owns the gateway schema (API keys) and serves nexusrag.gateway.v1.AuthService.
//
// Where things are: server.go (AuthService), store.go (the keys table), config.go,
// migrations/; keycache.go and keyclient.go (authenticating keys here and from other
// processes); edge.go and middleware.go (the HTTP chain), errors.go (the one table from
// gRPC statuses to HTTP), sse.go, documents.go, ratelimit.go, idempotency.go, health.go.
package gateway

# syntax=docker/dockerfile:1
#
# One image for every shape of NexusRAG: `serve` (all services), `serve --services=<name>`
# (one service, as in deploy/k8s/overlays/split and docker-compose.yml), `migrate`,
# `apikey ...`, `healthcheck` (the compose health checks). See docs/adr/0002-deployment-shapes.md.
#
# Not built on the project's machines (they have no Docker engine); needs BuildKit
# (Docker 23+ default, or DOCKER_BUILDKIT=1) for the cache mounts.
#   docker build -t nexusrag:local .
#   docker run --rm -p 8000:8000 -p 127.0.0.1:9000:9000 -e DATABASE_URL=... -e REDIS_URL=... nexusrag:local

FROM golang:1.26-bookworm AS build
WORKDIR /src
# GOWORK=off: go.work only says `use .`; the image builds the root module alone (ADR 0001).
# GOTOOLCHAIN=local: never download another toolchain during the build.
ENV CGO_ENABLED=0 GOWORK=off GOTOOLCHAIN=local GOFLAGS=-mod=readonly

# Dependencies first, so that a source change does not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/nexusrag ./cmd/nexusrag

# The ingest service's image (deploy/k8s/overlays/split/ingest.yaml; targets of their own
# come before the default image, which stays the last stage): the same binary with
# poppler-utils, whose pdfinfo and pdftotext the worker runs on PDFs, under util-linux's
# prlimit (in Debian's essential set) (ADR 0025).
#   docker build --target ingest -t nexusrag-ingest:local .
FROM debian:bookworm-slim AS ingest
RUN apt-get update && apt-get install -y --no-install-recommends poppler-utils ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/nexusrag /nexusrag
USER 65532:65532
ENV GRPC_ADDR=:9000 METRICS_ADDR=:9090
EXPOSE 9000 9090
ENTRYPOINT ["/nexusrag"]
CMD ["serve", "--services=ingest"]

# The failover service's image (deploy/k8s/overlays/split/failover.yaml): the ingest image
# (the all-in-one overlay runs every service in this one) plus the PostgreSQL 15 client
# tools failover runs for backups and restores (pg_dump, pg_restore, psql).
#   docker build --target failover -t nexusrag-failover:local .
FROM ingest AS failover
USER root
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*
# The backup sets' directory (BACKUP_LOCAL_DIR in deploy/k8s and docker-compose.yml), owned
# by the non-root user so that a new compose volume mounted there inherits it.
RUN install -d -o 65532 -g 65532 /var/lib/nexusrag/backups
USER 65532:65532
CMD ["serve", "--services=failover"]

# static-debian12: no shell, no libc, CA certificates and tzdata included; nonroot = uid 65532.
# Every service but ingest (PDFs) and failover (backups) needs nothing more.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nexusrag /nexusrag
# Numeric user, so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# 8000: REST/SSE gateway (HTTP_ADDR), /v1/health. 9000: gRPC (GRPC_ADDR); every call but
# health needs an API key or a service token, but keep it off the internet. 9090: /metrics
# (METRICS_ADDR). A container's loopback is its own, so the image listens on every interface;
# what reaches those ports is decided where it runs (-p, a Service, a NetworkPolicy).
ENV GRPC_ADDR=:9000 METRICS_ADDR=:9090
EXPOSE 8000 9000 9090
ENTRYPOINT ["/nexusrag"]
CMD ["serve"]


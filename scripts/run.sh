#!/usr/bin/env bash
# `make run`: from a fresh Debian machine to the whole platform on :8000.
# Installs/starts PostgreSQL 15 + pgvector and Redis when missing, builds, migrates,
# makes sure a local admin key exists (kept in var/, never committed), prints a curl to
# paste, then serves in the foreground (Ctrl-C stops it gracefully).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/deps.sh
make --no-print-directory build >/dev/null
mkdir -p var
bin/nexusrag migrate >var/migrate.log 2>&1 || { cat var/migrate.log >&2; exit 1; }

keyfile=var/local-admin.key
if [ ! -s "$keyfile" ] || ! bin/nexusrag apikey verify <"$keyfile" >/dev/null 2>&1; then
  bin/nexusrag apikey create --tenant t1 --role admin --name local-admin --output json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' >"$keyfile"
  chmod 600 "$keyfile"
fi
# The keys this platform's services sign their calls to each other with (ADR 0011). One
# process needs none, but a second one started by hand (serve --services=...) shares these.
keys=var/service-auth.keys
[ -s "$keys" ] || bin/nexusrag servicekey create --out "$keys" 2>/dev/null
export SERVICE_AUTH_KEYS_FILE="${SERVICE_AUTH_KEYS_FILE:-$keys}"
# t1 is the local admin's tenant: the enterprise plan, so that every example in the README
# works (new tenants get DEFAULT_PLAN_ID, free unless you say otherwise).
if ! bin/nexusrag plan show --tenant t1 2>var/plan.log | grep -q '(assigned)'; then
  bin/nexusrag plan set --tenant t1 --plan enterprise >/dev/null 2>>var/plan.log || { cat var/plan.log >&2; exit 1; }
fi
# t1's admins are the platform's too: they may turn kill switches and canaries.
export PLATFORM_ADMIN_TENANTS="${PLATFORM_ADMIN_TENANTS:-t1}"
# The Agent 2.0 demo corpus (tenant t1, corpus c1); a no-op once seeded.
bin/nexusrag seed-demo 2>var/seed-demo.log || { cat var/seed-demo.log >&2; exit 1; }
port=$(sed -E 's/.*:([0-9]+)$/\1/' <<<"${HTTP_ADDR:-:8000}")

cat <<MSG

NexusRAG is starting on http://localhost:$port (gRPC on ${GRPC_ADDR:-127.0.0.1:9000}, metrics on ${METRICS_ADDR:-127.0.0.1:9090}).
The local admin key of tenant t1 is in $keyfile. Try:

  curl -s http://localhost:$port/v1/auth/whoami -H "Authorization: Bearer \$(cat $keyfile)"

  curl -s http://localhost:$port/v1/health

  curl -sN http://localhost:$port/v1/run -H "Authorization: Bearer \$(cat $keyfile)" \\
    -d '{"session_id": "demo", "corpus_id": "c1", "message": "What are the release gates for Agent 2.0?"}'

API docs: http://localhost:$port/v1/docs    Stop: Ctrl-C (graceful)

MSG
exec bin/nexusrag serve

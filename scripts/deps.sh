#!/usr/bin/env bash
# Installs (when missing) and starts the local dependencies of NexusRAG on a Debian
# machine: PostgreSQL 15 with pgvector, Redis, and the tools the product and its tests run
# (poppler-utils for PDFs, openssl, chromium, node, python3). Idempotent: a machine that already
# has everything running is left as it is. Used by `make run`, `make test` and .ci/run.
set -euo pipefail

PG_MAJOR=15
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

log() { printf '[deps] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_update() {
  if [ "$apt_updated" -eq 0 ]; then
    # Unreachable third-party lists must not stop us: apt exits non-zero when any list fails.
    as_root apt-get update -qq || log "apt-get update reported errors (continuing)"
    apt_updated=1
  fi
}
apt_install() {
  apt_update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# debian_mirror prints the Debian mirror the machine already uses, so the trixie
# source list points at the same place.
debian_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

install_postgres() {
  if [ ! -x /usr/lib/postgresql/$PG_MAJOR/bin/postgres ]; then
    log "installing PostgreSQL $PG_MAJOR"
    apt_install postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR
  fi
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$PG_MAJOR main$"; then
    log "creating cluster $PG_MAJOR/main"
    as_root pg_createcluster $PG_MAJOR main --port "$PG_PORT" >/dev/null
  fi
  local hba=/etc/postgresql/$PG_MAJOR/main/pg_hba.conf
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    log "enabling trust auth on loopback (local development only)"
    as_root sed -i -E 's/^(local|host)(\s+all\s+all\s+.*)(scram-sha-256|md5|peer)$/\1\2trust/' "$hba"
    grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba" || echo "host all all 127.0.0.1/32 trust" | as_root tee -a "$hba" >/dev/null
    as_root pg_ctlcluster --skip-systemctl-redirect $PG_MAJOR main reload 2>/dev/null || true
  fi
  if ! pg_lsclusters -h | awk -v v=$PG_MAJOR '$1==v && $2=="main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $PG_MAJOR"
    as_root pg_ctlcluster --skip-systemctl-redirect $PG_MAJOR main start
  fi
}

install_pgvector() {
  local extdir
  extdir=$(/usr/lib/postgresql/$PG_MAJOR/bin/pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/$PG_MAJOR)/extension
  if [ -f "$extdir/vector.control" ]; then return; fi
  if apt-cache show postgresql-$PG_MAJOR-pgvector >/dev/null 2>&1; then
    log "installing pgvector from packages"
    apt_install postgresql-$PG_MAJOR-pgvector && return
  fi
  log "building pgvector from Debian's trixie source package"
  local list=/etc/apt/sources.list.d/nexusrag-trixie-src.list
  if [ ! -f "$list" ]; then
    echo "deb-src $(debian_mirror) trixie main" | as_root tee "$list" >/dev/null
    apt_updated=0
  fi
  apt_install postgresql-server-dev-$PG_MAJOR build-essential dpkg-dev
  local build
  build=$(mktemp -d)
  (cd "$build" && apt-get source -qq pgvector >/dev/null 2>&1)
  local src
  src=$(find "$build" -maxdepth 1 -mindepth 1 -type d -name 'pgvector-*' | head -n1)
  [ -n "$src" ] || { log "apt-get source pgvector produced no source tree"; exit 1; }
  make -s -C "$src" PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config >/dev/null
  as_root make -s -C "$src" PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config install >/dev/null
  rm -rf "$build"
  log "pgvector installed"
}

install_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing Redis"
    apt_install redis-server redis-tools
  fi
  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

# The ingest worker reads PDFs with poppler-utils (pdfinfo, pdftotext), run under util-linux's
# prlimit (Debian's essential set has it). The tests check webhook signatures with openssl's HMAC, an implementation independent of
# the platform's, drive the web console in Debian's headless chromium, and run the SDK
# suites with node/npm (TypeScript, frontend) and python3 (Python).
install_tools() {
  if ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdfinfo >/dev/null 2>&1; then
    log "installing poppler-utils (PDF text extraction)"
    apt_install poppler-utils
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    log "installing openssl"
    apt_install openssl
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (the console's browser tests)"
    apt_install chromium
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm (the TypeScript and frontend SDK suites)"
    apt_install nodejs npm
  fi
  if ! command -v python3 >/dev/null 2>&1; then
    log "installing python3 (the Python SDK suite)"
    apt_install python3
  fi
}

wait_postgres() {
  for _ in $(seq 1 100); do
    if psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then return; fi
    sleep 0.1
  done
  log "PostgreSQL did not accept connections on 127.0.0.1:$PG_PORT"; exit 1
}

install_postgres
install_pgvector
install_redis
install_tools
wait_postgres
log "PostgreSQL $PG_MAJOR (+pgvector) on 127.0.0.1:$PG_PORT and Redis on 127.0.0.1:$REDIS_PORT are ready"

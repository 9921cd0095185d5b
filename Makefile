# NexusRAG developer entry points. `make run` and `make test` are the two commands of the README.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN       := bin/nexusrag
BUF       := GOWORK=off go tool -modfile=tools/buf/go.mod buf
GO_FILES  := $(shell find cmd services pkg gen -name '*.go' 2>/dev/null)

.PHONY: help
help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install and start PostgreSQL 15 + pgvector and Redis when missing
	@bash scripts/deps.sh

.PHONY: proto
proto: ## regenerate gen/ from proto/ (local plugins only) and lint the contracts
	@rm -rf gen/go gen/openapi/*.json
	$(BUF) lint
	$(BUF) generate

.PHONY: build
build: $(BIN) ## build the nexusrag binary

$(BIN): $(GO_FILES) go.mod go.sum
	@mkdir -p bin
	go build -o $(BIN) ./cmd/nexusrag

.PHONY: check-proto
check-proto: ## fail when gen/ is stale: regenerate into a scratch dir and compare
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  $(BUF) lint && $(BUF) generate -o $$tmp && \
	  diff -r $$tmp/gen/go gen/go && diff $$tmp/gen/openapi/nexusrag.swagger.json gen/openapi/nexusrag.swagger.json && \
	  echo "gen/ is up to date with proto/"

# The SDKs (sdk/) are generated from the document the gateway serves at /v1/openapi.json,
# which `nexusrag openapi` prints without a running platform; make test fails when the
# committed SDKs differ from a fresh generation (cmd/nexusrag TestSDKs).
.PHONY: sdk-generate
sdk-generate: build ## regenerate the SDKs (sdk/) from the served OpenAPI document
	$(BIN) openapi > sdk/openapi.json
	cd sdk && npm ci --no-audit --no-fund --loglevel=error && node scripts/generate.mjs
	python3 sdk/python/generate.py

.PHONY: migrate
migrate: build ## apply database migrations
	$(BIN) migrate

.PHONY: run
run: ## install/start Postgres+pgvector and Redis, migrate, and serve everything on :8000
	@bash scripts/run.sh

# Cloud SDKs must never probe instance-metadata servers from tests (no cloud here, and
# traffic beyond loopback is not allowed): disable the AWS probe and give Google clients a
# credentials file that does not exist, so they fail before any probe.
test test-all fuzz-api bench soak eval: export AWS_EC2_METADATA_DISABLED = true
test test-all fuzz-api bench soak eval: export GOOGLE_APPLICATION_CREDENTIALS = /nonexistent/nexusrag-test-credentials.json
# The race runtime sleeps a second before every exit of a race-built program (to catch
# races at exit); the suite starts hundreds of them (test binaries, the e2e binary).
test test-all fuzz-api: export GORACE = atexit_sleep_ms=0

.PHONY: test test-all
.PHONY: up seed
up: run ## the same as run

seed: build ## seed the demo corpus (tenant t1, corpus c1) into DATABASE_URL's database
	$(BIN) seed-demo

test: ## everything CI checks: codegen, tidy modules, vet, unit + integration + end-to-end tests, bounded fuzzing; prints its wall time
	@start=$$(date +%s); $(MAKE) --no-print-directory test-all; status=$$?; \
	  echo "make test: $$([ $$status = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - start )) s"; exit $$status

test-all: deps check-proto
	GOWORK=off go mod tidy -diff
	@unformatted=$$(gofmt -l cmd pkg services internal bench soak); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...
	go test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz

# Native fuzz targets of the request decoders (run, documents, provider config, page
# tokens, idempotency keys, API keys) and of the credential parsers (service tokens, the
# authorization metadata); each runs FUZZTIME. Their seeds also run in go test. FUZZTIME is a
# count of executions, not a duration: a duration races Go's fuzz coordinator at its deadline
# and fails with "context deadline exceeded" and no crasher (golang/go#75804, fixed in Go 1.27).
FUZZ_TARGETS := services/gateway:FuzzDecodeRun services/gateway:FuzzDecodeUpload services/gateway:FuzzParseAPIKey \
	services/gateway:FuzzIdempotencyKey services/retrieval:FuzzProviderConfig services/ingest:FuzzPageToken \
	pkg/svcauth:FuzzVerify pkg/grpcx:FuzzParseBearer
FUZZTIME ?= 10000x
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME executions (default 10000x)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
	  out=$$(go test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) ./$$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	done

# The API fuzzer (cmd/nexusrag TestAPIFuzz, pkg/apifuzz) runs every single mutation of
# every route in make test; fuzz-api adds FUZZ_API_RANDOM random combinations per route.
FUZZ_API_RANDOM ?= 300
FUZZ_API_SEED ?=
.PHONY: fuzz-api
fuzz-api: deps ## the API fuzzer against the built binary, longer: cases per route, failures as curl lines (FUZZ_API_RANDOM, FUZZ_API_SEED)
	set -o pipefail; NEXUSRAG_FUZZ_API_RANDOM=$(FUZZ_API_RANDOM) NEXUSRAG_FUZZ_API_SEED=$(FUZZ_API_SEED) \
	  go test -race -count=1 -timeout 2h -run '^TestAPIFuzz$$' -v ./cmd/nexusrag 2>&1 | grep -av '^ *{"time"'

# The web console (console/): a pinned esbuild bundles it into services/gateway/console/dist,
# which the binary embeds (committed, so that building the binary needs no npm).
.PHONY: console
console: ## rebuild the web console's static files (npm ci, then esbuild)
	cd console && npm ci --no-audit --no-fund && npm run build

# Screenshots of the console's main pages, for the README (Debian's chromium, headless).
.PHONY: screenshots
screenshots: build deps ## write docs/screenshots/*.png from the console against a fresh platform
	NEXUSRAG_SCREENSHOTS=$(CURDIR)/docs/screenshots go test -count=1 -run '^TestConsoleScreenshots$$' ./cmd/nexusrag

.PHONY: bench
bench: build deps ## start the built binary on local Postgres/Redis and print a table of figures
	go run ./bench

# The soak: SOAK_CLIENTS clients for SOAK_DURATION against a race-built binary while
# Redis restarts, Postgres backends are terminated and an ingest worker is killed.
SOAK_CLIENTS ?= 8
SOAK_DURATION ?= 2m
.PHONY: soak
soak: deps ## N clients for M minutes under a fault schedule; prints a report and fails on undocumented 5xx, lost or duplicated documents, races, leaks (SOAK_CLIENTS, SOAK_DURATION)
	go build -race -o bin/nexusrag-race ./cmd/nexusrag
	go run ./soak -bin bin/nexusrag-race -clients $(SOAK_CLIENTS) -duration $(SOAK_DURATION)

CISI ?= ../shared/data/cisi
.PHONY: eval
eval: build deps ## retrieval quality on CISI through the real ingestion pipeline, beside bleve (nDCG@10, Recall@10, MRR, p50/p99)
	$(BIN) migrate >/dev/null
	$(BIN) eval retrieval --docs $(CISI)/CISI.ALL --queries $(CISI)/CISI.QRY --qrels $(CISI)/CISI.REL --k 10 \
	  --chunking default,2000/200 --bleve

.PHONY: clean
clean: ## remove build output
	rm -rf bin var

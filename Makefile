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

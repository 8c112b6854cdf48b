# Latchkey. `make run` starts the server with demo data; `make test` runs the
# whole suite (SQLite always, PostgreSQL when reachable; both in CI).

GO        ?= go
BIN       := bin/latchkey
GOFLAGS   ?=
# Tests that start several processes or a browser live in ./e2e.
TEST_PKGS ?= ./...

.DEFAULT_GOAL := help

include make/web.mk

.PHONY: help
help: ## Show the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: run
run: ## Start Latchkey on the embedded default (SQLite, local key file, demo data)
	$(GO) run ./cmd/latchkey serve --demo

.PHONY: build
build: ## Build bin/latchkey (pure Go, no cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/latchkey

.PHONY: test
test: node_modules ## Run the whole test suite (browser tests load @alter-ai/connect from node_modules)
	@$(GO) run ./testutil/pgprobe
	$(GO) test -count=1 -timeout 20m $(TEST_PKGS)

.PHONY: bench
bench: ## Proxy load test: direct vs bare reverse proxy vs Latchkey on SQLite and PostgreSQL
	$(GO) run ./e2e/bench $(BENCH_FLAGS)

.PHONY: bench-go
bench-go: ## Go micro-benchmarks of every package
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: lint
lint: lint-web ## gofmt, go vet, templ fmt and generated-file freshness
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

.PHONY: clean
clean: ## Remove build outputs (not ./data)
	rm -rf bin

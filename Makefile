# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go

# Demo credentials for `make run`; override on the command line.
BOOTSTRAP_ADMIN_EMAIL ?= admin@example.com
BOOTSTRAP_ADMIN_PASSWORD ?= admin-demo-password
export BOOTSTRAP_ADMIN_EMAIL BOOTSTRAP_ADMIN_PASSWORD

.PHONY: run test generate check-generate lint vet build pay deps bench

## run: start the API with a private PostgreSQL (unless DATABASE_URL is set), a seeded demo catalog and an admin
run: deps
	$(GO) run ./cmd/shopd

## test: every test, against real PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster)
test:
	@scripts/install-deps --with-redis --with-browser
	$(GO) test -race -count=1 ./...

## deps: install missing system packages the server needs (PostgreSQL's server binaries)
deps:
	@scripts/install-deps

## pay: send a signed payment_intent.succeeded for ORDER to the running server (local development)
pay:
	@test -n "$(ORDER)" || { echo "usage: make pay ORDER=<order id>"; exit 2; }
	$(GO) run ./cmd/shopd pay $(ORDER)

## build: the server binary in bin/
build:
	$(GO) build -o bin/shopd ./cmd/shopd

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen

## check-generate: fail when gen/ is stale
check-generate: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked changes"; exit 1; }

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## lint: the spec with Redocly, the Go code with go vet
lint: node_modules/.package-lock.json vet
	npx --no-install redocly lint openapi.yaml

vet:
	$(GO) vet ./...

## bench: drive the built server at 32 clients (list, get, add-to-cart + checkout) and pgbench the same SQL; prints ops/s, p50/p99, peak RSS, API/SQL ratios
BENCH_FLAGS ?=
bench: build
	$(GO) run ./cmd/shopbench -server bin/shopd $(BENCH_FLAGS)

# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
GO ?= go

.PHONY: run test generate check-generate client check-client breaking lint vet build pay deps bench

## run: build and start cmd/shopdev: a private PostgreSQL (unless DATABASE_URL is set), stripe-mock, the demo catalog and an admin, then the API; Ctrl-C stops it all
# Built and exec'd rather than `go run`, which exits 1 after a Ctrl-C: make's
# own child is shopdev, whose clean shutdown exits 0, so make reports no error.
run: deps
	@$(GO) build -o bin/shopdev ./cmd/shopdev
	@exec bin/shopdev

## test: every test, against real PostgreSQL (TEST_DATABASE_URL, else a throwaway cluster)
test:
	@scripts/install-deps --with-node --with-redis --with-browser
	$(GO) test -race -count=1 ./...

## deps: install missing system packages the server needs (PostgreSQL's server binaries)
deps:
	@scripts/install-deps

## pay: send a signed payment_intent.succeeded for ORDER to the server `make run` started (local development)
pay:
	@test -n "$(ORDER)" || { echo "usage: make pay ORDER=<order id>"; exit 2; }
	@$(GO) build -o bin/shopdev ./cmd/shopdev
	@bin/shopdev pay $(ORDER)

## build: the production server binary in bin/ (no development tooling inside)
build:
	$(GO) build -o bin/shopd ./cmd/shopd

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen

## check-generate: fail when gen/ is stale
check-generate: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked changes"; exit 1; }

CLIENT := clients/typescript

$(CLIENT)/node_modules/.package-lock.json: $(CLIENT)/package.json $(CLIENT)/package-lock.json
	cd $(CLIENT) && npm ci --no-audit --no-fund
	@touch $@

## client: regenerate the TypeScript client's types from openapi.yaml, build it to dist/ and type-check its tests
client: $(CLIENT)/node_modules/.package-lock.json
	cd $(CLIENT) && npm run --silent generate && npm run --silent build && npm run --silent typecheck

## check-client: fail when the TypeScript client's generated types are stale
check-client: client
	@git diff --exit-code --stat -- $(CLIENT)/src/schema.ts || { echo "$(CLIENT)/src/schema.ts is stale: run 'make client' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(CLIENT)/src)" || { git status --porcelain -- $(CLIENT)/src; echo "$(CLIENT)/src has uncommitted changes"; exit 1; }

## breaking: fail on any change to openapi.yaml that breaks clients of the last release, api/baseline.yaml (oasdiff, pinned in go.mod); see CHANGELOG.md for moving the baseline
breaking:
	@$(GO) tool oasdiff breaking api/baseline.yaml openapi.yaml --fail-on WARN || { echo "openapi.yaml breaks clients of api/baseline.yaml (the last release): keep the change compatible, or release a new major version and move the baseline (CHANGELOG.md)"; exit 1; }

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

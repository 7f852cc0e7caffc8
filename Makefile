# agentstore — the two commands that matter: `make run` and `make test`.
GO       ?= go
BIN      := bin/agentstore
SERVICES := scripts/services.sh
PKGS     := ./...

.PHONY: run build test fuzz soak unit lint generate check-generate ui check-ui migrate-diff migrate-hash migrate-lint migrate-lint-all bench fuzz clean ts-deps ts-generate ts-check ts-test ts-bench

## run: start the service on the embedded default (SQLite, in-process limiter and hub), with demo data on an empty database
run: build
	$(BIN) seed --demo --if-empty
	$(BIN) serve

## build: build the one binary into bin/agentstore
build:
	$(GO) build -o $(BIN) ./cmd/server

# FUZZ lists the fuzz targets as package:target.
FUZZ := ./internal/auth:FuzzVerify ./internal/httpapi:FuzzDecodeCreateRun ./internal/httpapi:FuzzAPI ./internal/httpapi:FuzzDecodeIngestItem ./internal/otlp:FuzzDecode

## test: every test (unit, integration on real PostgreSQL and Redis, end-to-end on the built binary), with -race, then a short fuzz run
test: check-generate check-ui lint build
	AGENTSTORE_BIN=$(CURDIR)/$(BIN) $(SERVICES) -- $(GO) test -race -count=1 -timeout 14m $(PKGS)
	@$(MAKE) --no-print-directory ts-test
	@$(MAKE) --no-print-directory fuzz FUZZTIME=10s

## fuzz: run every fuzz target for FUZZTIME each (default 2m); crashers land in testdata as seeds
FUZZTIME ?= 2m
fuzz:
	@for f in $(FUZZ); do pkg=$${f%%:*}; target=$${f##*:}; \
	  echo "fuzz $$target ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; done

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l cmd internal tools migrations ent/schema); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

## generate: regenerate ent/ from ent/schema
generate:
	$(GO) generate ./ent

## check-generate: fail when the committed ent/ differs from what ent/schema generates
check-generate:
	@scripts/check-generated.sh

## ui: rebuild the run viewer's bundle (internal/webui/assets) from ui/src with esbuild; commit the result
ui:
	cd ui && npm ci --no-audit --no-fund --loglevel=error && npx --no-install tsc -p tsconfig.json --noEmit && node build.mjs

## check-ui: fail when the committed bundle differs from what ui/src builds, or the TypeScript does not type-check
check-ui:
	@scripts/check-ui.sh

# TS is the TypeScript client, @agentstore/client; npm installs its pinned
# tools (openapi-typescript, tsc, Redocly CLI, ws, Deno) from its lockfile.
TS  := clients/typescript
NPM ?= npm

## ts-deps: install the TypeScript client's dev tools from its committed lockfile
ts-deps:
	@cd $(TS) && if [ "$$(sha256sum package-lock.json)" = "$$(cat node_modules/.agentstore-lock 2>/dev/null)" ]; then \
	  echo "$(TS): node_modules matches package-lock.json"; \
	else $(NPM) ci --no-audit --no-fund --loglevel=error && sha256sum package-lock.json > node_modules/.agentstore-lock; fi

## ts-generate: regenerate clients/typescript/src/openapi.ts from internal/httpapi/openapi.json
ts-generate: ts-deps
	cd $(TS) && $(NPM) run --silent generate

## ts-check: lint the OpenAPI document (Redocly, recommended rules), fail when the client's generated types are stale, build the client and type-check its examples against the built declarations
ts-check: ts-deps
	cd $(TS) && $(NPM) run --silent lint:openapi && $(NPM) run --silent check-generated && $(NPM) run --silent typecheck

## ts-test: ts-check, then the client's node:test suite against the built binary on SQLite and on PostgreSQL + Redis
ts-test: ts-check build
	AGENTSTORE_BIN=$(CURDIR)/$(BIN) $(SERVICES) -- $(NPM) --prefix $(TS) test

## ts-bench: the client against raw fetch (POST /v1/runs, 16 callers) and realtime delivery across a forced reconnect (10,000 events)
ts-bench: ts-deps build
	AGENTSTORE_BIN=$(CURDIR)/$(BIN) $(SERVICES) --durable -- node $(TS)/bench/bench.mjs

## migrate-diff: write the next migration from the ent schema (make migrate-diff name=add_x)
migrate-diff:
	@test -n "$(name)" || { echo "usage: make migrate-diff name=<what_changed>"; exit 2; }
	$(SERVICES) -- $(GO) run ./tools/migratediff -name $(name)

## migrate-hash: rewrite migrations/atlas.sum after a reviewed hand edit (such as an opt-out comment)
migrate-hash:
	$(GO) run ./tools/migratelint -hash

## migrate-lint: lint the migration files main does not have yet
migrate-lint:
	$(SERVICES) -- $(GO) run ./tools/migratelint

## migrate-lint-all: lint every migration file (CI runs on main itself, where nothing is new)
migrate-lint-all:
	$(SERVICES) -- $(GO) run ./tools/migratelint migrations/*.sql

## bench: every benchmark in one run on durable PostgreSQL (fsync on) and Redis — store vs pgx floor, HTTP ingest, list, limiter overhead, WebSocket fan-out and idle-connection memory; writes bench/report.md, bench/throughput.svg, bench/results.json
bench:
	GO=$(GO) $(SERVICES) --durable -- scripts/bench.sh
	@$(MAKE) --no-print-directory ts-bench

## soak: 10 minutes (SOAK_DURATION) of mixed REST and WebSocket load on PostgreSQL and Redis; fails when the server's RSS, goroutines, open files or DB connections trend upward (not part of test)
soak:
	GO=$(GO) $(SERVICES) -- scripts/soak.sh

clean:
	rm -rf bin data

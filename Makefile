# StacyVM build, run and test entry points. See README.md.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
AGENT   := internal/app/embedded/stacyvm-agent
export CGO_ENABLED := 0

.PHONY: all build agent serve prepare test test-go vet fmt-check clean

all: build

## build: bin/stacyvm (with the static agent embedded) and bin/stacyvm-agent
build: agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/stacyvm ./cmd/stacyvm
	cp $(AGENT) bin/stacyvm-agent

agent:
	$(GO) build -trimpath -ldflags '-s -w' -o $(AGENT) ./cmd/stacyvm-agent

## prepare: install and start what the server and tests need (root on Debian/Ubuntu)
prepare:
	@if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then \
		scripts/ci-prepare.sh; \
	elif [ "$$CI" = true ]; then \
		echo "CI=true needs root on Debian/Ubuntu to prepare the runtimes" >&2; exit 1; \
	else \
		echo "[prepare] not root on Debian/Ubuntu: skipping setup; tests needing Docker will be skipped" >&2; \
	fi

## serve: prepare the machine, build, and run the server on 127.0.0.1:7423
serve: prepare build
	bin/stacyvm serve

## test: prepare the machine, build, vet, and run every test
test: prepare build vet fmt-check lint sdk-deps test-go

vet:
	$(GO) vet ./...

## lint: staticcheck, pinned (installed into $(GOBIN_DIR) on first use, ~2 minutes)
STATICCHECK_VERSION := v0.8.2
GOBIN_DIR := $(shell $(GO) env GOPATH)/bin
.PHONY: lint
lint:
	@test -x $(GOBIN_DIR)/staticcheck && $(GOBIN_DIR)/staticcheck -version | grep -q '($(STATICCHECK_VERSION:v%=%))' \
		|| { echo "[lint] installing staticcheck $(STATICCHECK_VERSION)"; GOBIN=$(GOBIN_DIR) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION); }
	$(GOBIN_DIR)/staticcheck ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:" $$out >&2; exit 1; fi

test-go:
	STACYVM_BIN=$(CURDIR)/bin/stacyvm $(GO) test -count=1 -timeout 25m ./...

clean:
	rm -rf bin $(AGENT)

## bench: benchmark against real Docker (ours vs docker CLI and Engine API); writes
## docs/benchmarks.md and bench/results/<date>-<commit>.json. Extra flags: BENCHFLAGS="--idle 100"
.PHONY: bench
bench: build
	$(GO) run ./cmd/stacyvm-bench --server-bin bin/stacyvm $(BENCHFLAGS)

## sdk-deps: install the SDKs' pinned dev tools (tsc) and link the examples to the
## TypeScript SDK; test/sdk (part of test-go) builds and runs both SDK suites
.PHONY: sdk-deps
sdk-deps:
	@command -v npm >/dev/null || { if [ "$$CI" = true ]; then echo "npm missing (scripts/ci-prepare.sh installs it)" >&2; exit 1; fi; echo "[sdk-deps] npm missing: TypeScript SDK tests will skip" >&2; exit 0; }; \
	cd sdk/typescript && npm ci --no-audit --no-fund && npm run build && cd ../../examples/typescript && npm ci --no-audit --no-fund

## vm-assets: the vm provider's kernel and base initramfs (docs/vm.md); idempotent.
## test-vm: the vm provider's conformance suite under TCG; VM_BOOTS=N also measures boot-to-agent.
.PHONY: vm-assets test-vm
vm-assets:
	scripts/build-vm-assets.sh

test-vm: vm-assets
	STACYVM_VM_BOOTS=$(VM_BOOTS) $(GO) test -count=1 -timeout 20m -v ./internal/provider/vm/...

## certify: certify every runtime on this host (docs/runtime-certification.md); exit 1 on any FAIL.
## RUNTIME=gvisor FORMAT=json OUTPUT=report.json narrow it down.
.PHONY: certify
certify: build
	bin/stacyvm certify runtime $(or $(RUNTIME),all) --format $(or $(FORMAT),text) $(if $(OUTPUT),--output $(OUTPUT))

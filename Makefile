# registry-relay. `make run` starts the relay against the real registries,
# `make demo` against a local one, `make test` runs every test.

GO        ?= go
BIN       := $(CURDIR)/bin
CRANE_VER := v0.22.1
REGCTL_VER := v0.11.7
REGISTRY_VER := v3.1.2
# The 2026 rewrite of the OCI distribution-spec conformance suite.
CONFORMANCE_VER := v0.0.0-20260831232431-97274622c111
# Debian packages of the clients and daemons the end-to-end suite drives.
E2E_APT := skopeo podman containerd docker.io
FUZZTIME  ?= 5s
GOTEST    := $(GO) test -count=1
export OTEL_SDK_DISABLED := true
export OTEL_TRACES_EXPORTER := none

.PHONY: all build run demo test test-unit fuzz load lint tools e2e e2e-tools e2e-apt s3 clean

all: lint test build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/registry-relay ./cmd/registry-relay

run:
	$(GO) run ./cmd/registry-relay

demo: tools
	$(GO) run ./examples/demo

## test: lint, the race-enabled test suite, and a short run of every fuzz target.
test: lint test-unit fuzz

test-unit:
	$(GOTEST) -race -timeout 20m ./...

# Each fuzz target runs alone (go test allows one -fuzz pattern per package
# run). Go 1.26's fuzz coordinator can fail at the deadline without a
# finding (golang/go#75804): a failure that wrote no new corpus entry is
# retried once; a real finding leaves testdata/fuzz/<target>/ behind.
fuzz:
	@set -e; for pkg in $$($(GO) list ./internal/...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || { \
	      if [ -d "$$dir/testdata/fuzz/$$f" ] && [ -n "$$(git status --porcelain "$$dir/testdata/fuzz/$$f")" ]; then exit 1; fi; \
	      echo "fuzz $$f failed without a finding; retrying once"; \
	      $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; }; \
	  done; \
	done

## load: 1,000 concurrent blob streams and 10,000 manifest HEADs through the built relay (docs/load.md).
load:
	$(GOTEST) -tags load -v -timeout 10m ./internal/loadtest/

# Tidiness covers both modules: a go.mod that `go mod tidy` would rewrite
# (a dependency marked indirect that is imported directly, a stale go.sum
# line) fails with the diff tidy would apply.
lint:
	@out=$$(gofmt -l cmd internal examples); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in . deploy/check; do \
	  out=$$(cd $$m && $(GO) mod tidy -diff 2>&1) || { echo "go mod tidy needed in $$m:"; echo "$$out"; exit 1; }; \
	done
	$(GO) vet ./...
	$(GO) vet -tags e2e ./internal/e2e/...
	$(GO) vet -tags load ./internal/loadtest/
	$(GO) vet -tags s3 ./internal/cache/ ./internal/relay/

tools: $(BIN)/crane

$(BIN)/crane:
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VER)

$(BIN)/regctl:
	GOBIN=$(BIN) $(GO) install github.com/regclient/regclient/cmd/regctl@$(REGCTL_VER)

$(BIN)/registry:
	GOBIN=$(BIN) $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VER)

# SeaweedFS, the real S3 server the shared cache's tests run against. Its
# go.mod has replace directives, which go install refuses: the module is
# downloaded and built where it was copied (minutes on two cores the first
# time; Go's build cache makes later builds quick).
WEED_VER := v0.0.0-20261109003541-7506e5f91cd6

$(BIN)/weed:
	@set -e; dir=$$(cd /tmp && GOFLAGS=-mod=mod $(GO) mod download -json github.com/seaweedfs/seaweedfs@$(WEED_VER) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	test -n "$$dir"; echo "building SeaweedFS from $$dir"; \
	rm -rf $(BIN)/weed-src; mkdir -p $(BIN); cp -r "$$dir" $(BIN)/weed-src; chmod -R u+w $(BIN)/weed-src; \
	cd $(BIN)/weed-src && $(GO) build -o $(BIN)/weed ./weed; rm -rf $(BIN)/weed-src

## s3: the shared cache against a real S3 server (SeaweedFS).
s3: $(BIN)/weed
	WEED_BIN=$(BIN)/weed $(GOTEST) -p 1 -tags s3 -race -timeout 15m -run 'S3|Shared' ./internal/cache/ ./internal/relay/

## e2e: real clients and the OCI conformance suite through the relay binary.
e2e: e2e-tools
	$(GO) run -tags e2e ./internal/e2e/conformance/harness -suite $(BIN)/conformance -route k8s
	$(GO) run -tags e2e ./internal/e2e/conformance/harness -suite $(BIN)/conformance -route dockerhub -auth token -cache-auth=false
	$(GOTEST) -tags e2e -v -timeout 60m ./internal/e2e/ -args -bin $(BIN)

e2e-tools: build e2e-apt $(BIN)/crane $(BIN)/regctl $(BIN)/registry $(BIN)/conformance

$(BIN)/conformance:
	GOBIN=$(BIN) $(GO) install github.com/opencontainers/distribution-spec/conformance@$(CONFORMANCE_VER)

# Installs the missing Debian packages when running as root with apt; a
# client that still is not there is reported as skipped by the suite.
e2e-apt:
	@missing=""; for p in $(E2E_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || echo "apt-get failed; those clients will be skipped"; \
	else echo "cannot install$$missing (need root and apt-get); those clients will be skipped"; fi

clean:
	rm -rf $(BIN)

# Debian packages deploy/check drives: caddy (validate, a pull through it),
# prometheus (promtool), systemd (systemd-analyze), podman (reads
# registries.conf). A missing one skips its checks. On a host with systemd,
# installing caddy or prometheus also starts their services (:80/:443,
# :9090), so the target installs only when run as root, as in CI.
DEPLOY_APT := caddy prometheus systemd podman
IMAGE      ?= registry-relay:dev

.PHONY: deploy-check deploy-apt image

## deploy-check: Dockerfile, deploy/ and examples/ checked against the relay.
deploy-check: deploy-apt
	cd deploy/check && out=$$(gofmt -l .) && { [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }; } && \
	  $(GO) vet ./... && $(GOTEST) -timeout 15m ./...

deploy-apt:
	@missing=""; for p in $(DEPLOY_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || echo "apt-get failed; those checks will be skipped"; \
	else echo "cannot install$$missing (need root and apt-get); those checks will be skipped"; fi

## image: the container image from the Dockerfile, with docker or buildah.
image:
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
	  echo "docker build -t $(IMAGE) ."; docker build -t $(IMAGE) .; \
	elif command -v buildah >/dev/null; then \
	  echo "buildah build --layers -t $(IMAGE) ."; buildah build --layers -t $(IMAGE) .; \
	else echo "make image needs docker (with a running daemon) or buildah; install one, e.g. apt-get install buildah"; exit 1; fi

# Debian packages of the proxies `make bench` compares the relay with.
BENCH_APT := nginx caddy

.PHONY: bench bench-apt

## bench: the relay's throughput, latency and memory next to the registry,
## nginx and Caddy, on loopback; writes docs/benchmarks.md. Not part of test or CI.
bench: build $(BIN)/registry bench-apt
	$(GO) run ./cmd/relay-bench -bin $(BIN) -out docs/benchmarks.md $(BENCHFLAGS)

# As e2e-apt: installs what is missing when running as root with apt; the
# benchmark skips a proxy that is still missing and says so in its report.
bench-apt:
	@missing=""; for p in $(BENCH_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null || echo "apt-get failed; the benchmark skips$$missing"; \
	else echo "cannot install$$missing (need root and apt-get); the benchmark skips them"; fi

# registry-relay. `make run` starts the relay against the real registries,
# `make demo` against a local one, `make test` runs every test.

GO        ?= go
BIN       := $(CURDIR)/bin
CRANE_VER := v0.22.1
FUZZTIME  ?= 5s
GOTEST    := $(GO) test -count=1
export OTEL_SDK_DISABLED := true
export OTEL_TRACES_EXPORTER := none

.PHONY: all build run demo test test-unit fuzz lint tools clean

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

# Each fuzz target runs alone (go test allows one -fuzz pattern per package run).
fuzz:
	@set -e; for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l cmd internal examples); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

tools: $(BIN)/crane

$(BIN)/crane:
	GOBIN=$(BIN) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VER)

clean:
	rm -rf $(BIN)

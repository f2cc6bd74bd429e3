# haagent — build, test, lint, demo, benchmarks.
#
#   make demo    the main job: a local cluster where a node dies and haagent notices
#   make test    everything CI runs: format, go.mod drift, vet, unit and process
#                tests with -race, then the end-to-end tests on a real control plane
#
# Heavy, reusable builds (the control-plane binaries, lint tools) are cached
# outside the repository in $(CACHE_DIR).

SHELL := /bin/bash
GO ?= go
CACHE_DIR ?= $(or $(HAAGENT_CACHE_DIR),$(HOME)/.cache/haagent)
export HAAGENT_CACHE_DIR := $(CACHE_DIR)
TOOLS := $(CACHE_DIR)/tools
STATICCHECK_VERSION := v0.8.2

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X github.com/haagent/haagent/internal/version.Version=$(VERSION) \
           -X github.com/haagent/haagent/internal/version.Commit=$(COMMIT) \
           -X github.com/haagent/haagent/internal/version.BuildDate=$(BUILD_DATE)

.PHONY: soak all build test unit e2e lint fmt-check tidy-check vet staticcheck demo bench fuzz clean

# Every decoder of outside input: gossip metadata, votes, records, the
# config file, and the availability math. make fuzz runs each for FUZZTIME.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./agent/gossip:FuzzDecodeMeta ./agent/failover:FuzzDecodeVote \
	./agent/record:FuzzUnstructuredRoundTrip ./cmd/haagent:FuzzConfigFile \
	./internal/availability:FuzzKOfN ./internal/availability:FuzzSummarize

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/haagent ./cmd/haagent

## test: what CI runs (.ci/run). The first run builds the control plane (long; it prints progress).
test: fmt-check tidy-check vet unit e2e

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

e2e:
	hack/e2e.sh

## soak: 20 nodes under 10 % packet loss for SOAK_DURATION (20m); make test runs it for 2m.
SOAK_DURATION ?= 20m
soak:
	HAAGENT_SOAK_DURATION=$(SOAK_DURATION) HAAGENT_E2E_TIMEOUT=90m hack/e2e.sh -run TestSoak -v

lint: fmt-check tidy-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

tidy-check:
	$(GO) mod tidy -diff
	cd test && $(GO) mod tidy -diff

vet:
	$(GO) vet ./...
	cd test && $(GO) vet ./...

$(TOOLS)/staticcheck-$(STATICCHECK_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS)/staticcheck-$(STATICCHECK_VERSION).d $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck-$(STATICCHECK_VERSION).d/staticcheck $@
	rmdir $(TOOLS)/staticcheck-$(STATICCHECK_VERSION).d

staticcheck: $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)
	$< ./...
	cd test && $< ./...

demo: build
	hack/demo.sh

bench:
	hack/bench.sh

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin

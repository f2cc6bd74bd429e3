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
# haagent is built and tested with this Go release: it has the standard-library
# security fixes that govulncheck asks for. The go command fetches it from the
# Go module proxy on first use (about 76 MB, cached in the module cache).
# The control-plane binaries (test infrastructure only) keep the machine's Go.
export GOTOOLCHAIN := go1.27.3
CACHE_DIR ?= $(or $(HAAGENT_CACHE_DIR),$(HOME)/.cache/haagent)
export HAAGENT_CACHE_DIR := $(CACHE_DIR)
TOOLS := $(CACHE_DIR)/tools
STATICCHECK_VERSION := v0.8.2
# helm renders charts/haagent, from which deploy/ is generated (make manifests).
HELM_VERSION := v3.22.0
HELM := $(TOOLS)/helm-$(HELM_VERSION)
# The chart's end-to-end test finds helm here.
export HAAGENT_HELM := $(HELM)

# The version lives in one place: the file VERSION. A build of the commit
# tagged v$$(cat VERSION) is that version; any other build is
# <VERSION>-dev.g<short commit> (valid as semver and as an image tag). After a
# release, VERSION moves on to the next version.
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
VERSION ?= $(shell v=$$(cat VERSION); \
	if git tag --points-at HEAD 2>/dev/null | grep -qx "v$$v"; then echo "$$v"; \
	else echo "$$v-dev.g$(COMMIT)"; fi)
# Builds are reproducible: every timestamp (build date, image files) is the
# commit time, or SOURCE_DATE_EPOCH when set.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BUILD_DATE ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X github.com/haagent/haagent/internal/version.Version=$(VERSION) \
           -X github.com/haagent/haagent/internal/version.Commit=$(COMMIT) \
           -X github.com/haagent/haagent/internal/version.BuildDate=$(BUILD_DATE)
# Release binaries and the image: static (no C library in the image),
# without local paths or debug symbols.
STATIC_FLAGS := -trimpath -ldflags '-s -w $(LDFLAGS)'
PLATFORMS := linux/amd64 linux/arm64
IMAGE_REPO ?= ghcr.io/haagent/haagent
# SPDX expression for the image label (LICENSE).
LICENSES ?= Apache-2.0
CYCLONEDX_VERSION := v1.10.0
CYCLONEDX := $(TOOLS)/cyclonedx-gomod-$(CYCLONEDX_VERSION)
RELEASE_DIR = _output/release/v$(VERSION)

.PHONY: soak chaos apicost sim all build test unit e2e lint fmt-check tidy-check vet staticcheck demo bench bench-hollow fuzz clean \
	manifests manifests-check helm-lint rules-check vulncheck \
	binaries image release

# Every decoder of outside input: gossip metadata, memberlist's metrics,
# votes, records, the config file, and the availability math. make fuzz
# runs each for FUZZTIME.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./agent/gossip:FuzzDecodeMeta ./agent/gossip:FuzzMemberlistSink ./agent/failover:FuzzDecodeVote \
	./agent/record:FuzzUnstructuredRoundTrip ./cmd/haagent:FuzzConfigFile \
	./internal/availability:FuzzKOfN ./internal/availability:FuzzSummarize

all: build

# Static, like the image (see test/cluster BuildAgent for why it matters).
build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/haagent ./cmd/haagent

## binaries: static release binaries _output/bin/haagent-linux-{amd64,arm64}.
binaries:
	@mkdir -p _output/bin
	@for p in $(PLATFORMS); do \
		out=_output/bin/haagent-$${p/\//-}; echo "build $$out ($(VERSION))"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build $(STATIC_FLAGS) -o $$out ./cmd/haagent || exit 1; \
	done
	@stat -c '%n %s' $(foreach p,$(PLATFORMS),_output/bin/haagent-$(subst /,-,$(p))) | \
		awk '{printf "%-64s %6.1f MiB\n", $$1, $$2/1048576}'

## image: the container image, built offline into _output/image: one OCI
## archive with both platforms, and one `docker load` archive per platform.
image: binaries
	$(GO) build -C tools -o $(CURDIR)/_output/bin/haagent-image ./cmd/haagent-image
	_output/bin/haagent-image \
		$(foreach p,$(PLATFORMS),--binary $(p)=_output/bin/haagent-$(subst /,-,$(p))) \
		--version $(VERSION) --revision $(COMMIT) --created $(BUILD_DATE) \
		--repository $(IMAGE_REPO) --licenses '$(LICENSES)' --out-dir _output/image

$(CYCLONEDX):
	@mkdir -p $(TOOLS)
	GOBIN=$@.d $(GO) install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_VERSION)
	mv $@.d/cyclonedx-gomod $@
	rmdir $@.d

## release: _output/release/v$(VERSION): the binaries, the image archives, a
## CycloneDX SBOM per binary and SHA256SUMS (check with sha256sum -c SHA256SUMS).
release: image $(CYCLONEDX)
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	cp $(foreach p,$(PLATFORMS),_output/bin/haagent-$(subst /,-,$(p))) $(RELEASE_DIR)/
	cp $(foreach p,$(PLATFORMS),_output/image/haagent-$(VERSION)-$(subst /,-,$(p)).docker.tar) \
		_output/image/haagent-$(VERSION).oci.tar $(RELEASE_DIR)/
	@for p in $(PLATFORMS); do \
		sbom=$(RELEASE_DIR)/haagent-$${p/\//-}.cdx.json; echo "sbom $$sbom"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(CYCLONEDX) app -json -licenses -noserial -notimestamp \
			-main cmd/haagent -output $$sbom . 2> _output/release/sbom.log || { cat _output/release/sbom.log; exit 1; }; \
	done
	cd $(RELEASE_DIR) && sha256sum haagent-* > SHA256SUMS
	@echo "release v$(VERSION) in $(RELEASE_DIR):"
	@cd $(RELEASE_DIR) && while read -r sum f; do \
		printf '%s  %9s  %s\n' "$$sum" "$$(numfmt --to=iec-i --suffix=B --round=nearest --format=%.1f $$(stat -c %s $$f))" "$$f"; \
	done < SHA256SUMS

## test: what CI runs (.ci/run). The first run builds the control plane (long; it prints progress).
test: fmt-check tidy-check generate-check manifests-check helm-lint rules-check vet vulncheck unit e2e

## rules-check: promtool check rules on the shipped alert rules, and promtool
## test rules on their unit tests (test/prometheus/*_test.yaml: each alert
## fires in its scenario, once per problem, and resolves). promtool is built
## and cached by hack/build-prometheus.sh; PROMTOOL=<path> uses another.
## (docs/docs_test.go checks that every alert has such a test.)
RULES := charts/haagent/files/prometheus-rules.yaml
rules-check:
	@promtool="$(PROMTOOL)"; if [ -z "$$promtool" ]; then \
		bin=$$(hack/build-prometheus.sh) || exit 1; promtool=$$bin/promtool; fi; \
	"$$promtool" check rules $(RULES) && "$$promtool" test rules test/prometheus/*_test.yaml

unit:
	$(GO) test -race -count=1 -timeout 20m ./...
	cd tools && $(GO) test -race -count=1 -timeout 20m ./...

e2e: $(HELM)
	hack/e2e.sh

## soak: 20 nodes under 10 % packet loss for SOAK_DURATION (20m); make test runs it for 2m.
SOAK_DURATION ?= 20m
soak:
	HAAGENT_SOAK_DURATION=$(SOAK_DURATION) HAAGENT_E2E_TIMEOUT=90m hack/e2e.sh -run TestSoak -v

## chaos: a randomized, seeded fault campaign (crashes, isolation, partitions,
## loss, agent stalls and restarts, API outages) on 7 and then 20 nodes, for
## CHAOS_DURATION of faults per size (about 15 minutes in all), checking that no
## pod runs twice, no healthy node is touched and no record is lost. It writes
## docs/CHAOS.md. make test runs the short version (90 s, 7 nodes). Replay a run
## with HAAGENT_CHAOS_SEED=<the seed it logged>; see docs/chaos-testing.md.
CHAOS_DURATION ?= 7m
chaos:
	HAAGENT_CHAOS_DURATION=$(CHAOS_DURATION) HAAGENT_CHAOS_SIZES=7,20 HAAGENT_CHAOS_REPORT=$(CURDIR)/docs/CHAOS.md \
		HAAGENT_E2E_TIMEOUT=60m hack/e2e.sh -run TestChaos -v

lint: fmt-check tidy-check manifests-check helm-lint vet staticcheck vulncheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

tidy-check:
	$(GO) mod tidy -diff
	cd test && $(GO) mod tidy -diff
	cd tools && $(GO) mod tidy -diff

vet:
	$(GO) vet ./...
	cd test && $(GO) vet ./...
	cd tools && $(GO) vet ./...

# staticcheck and govulncheck read Go's own packages, so each is built with
# the Go release that builds haagent, and cached under that release's name.
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)-$(GOTOOLCHAIN)
$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$@.d $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $@.d/staticcheck $@
	rmdir $@.d

staticcheck: $(STATICCHECK)
	$< ./...
	cd test && $< ./...
	cd tools && $< ./...

# govulncheck, offline: its database is built from a pinned snapshot of
# golang.org/x/vulndb (served by the Go module proxy like any module: its
# data/osv holds every Go vulnerability report) with that module's indexdb
# command. Bump VULNDB_VERSION (a pseudo-version of golang.org/x/vulndb) for
# newer reports. Where https://vuln.go.dev is reachable, make vulncheck
# VULNDB_URL=https://vuln.go.dev uses the live database instead.
GOVULNCHECK_VERSION := v1.9.0
GOVULNCHECK := $(TOOLS)/govulncheck-$(GOVULNCHECK_VERSION)-$(GOTOOLCHAIN)
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
VULNDB_DIR := $(CACHE_DIR)/vulndb/$(VULNDB_VERSION)
VULNDB_URL ?= file://$(VULNDB_DIR)

$(GOVULNCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$@.d $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	mv $@.d/govulncheck $@
	rmdir $@.d

$(VULNDB_DIR)/index/db.json:
	@echo "vulndb: building the vulnerability database from golang.org/x/vulndb@$(VULNDB_VERSION)"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS)/indexdb-$(VULNDB_VERSION).d $(GO) install golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION)
	src=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p'); \
	test -d "$$src/data/osv" || { echo "vulndb: no data/osv in golang.org/x/vulndb@$(VULNDB_VERSION)"; exit 1; }; \
	rm -rf $(VULNDB_DIR).tmp && $(TOOLS)/indexdb-$(VULNDB_VERSION).d/indexdb -vulns "$$src/data/osv" -out $(VULNDB_DIR).tmp
	rm -rf $(VULNDB_DIR) && mv $(VULNDB_DIR).tmp $(VULNDB_DIR)
	@echo "vulndb: $$(ls $(VULNDB_DIR)/ID | wc -l) reports in $(VULNDB_DIR)"

## vulncheck: govulncheck over haagent and its release tools (not over the
## test module: the control plane it builds is test infrastructure).
vulncheck: $(GOVULNCHECK) $(if $(filter file://%,$(VULNDB_URL)),$(VULNDB_DIR)/index/db.json)
	$(GOVULNCHECK) -db $(VULNDB_URL) ./...
	cd tools && $(GOVULNCHECK) -db $(VULNDB_URL) ./...

$(HELM):
	@mkdir -p $(TOOLS)
	GOBIN=$(HELM).d $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(HELM).d/helm $@
	rmdir $(HELM).d

## generate: regenerate what the NodeFailover Go types in agent/record and
## their +kubebuilder markers define: their DeepCopy methods
## (agent/record/zz_generated.deepcopy.go) and the CRD in the chart
## (charts/haagent/crds/nodefailover.yaml; make manifests copies it to
## deploy/). controller-gen is pinned in tools/go.mod; Go's build cache keeps
## its build. generate-check (part of make test) fails when they differ.
CONTROLLER_GEN := $(GO) tool -modfile=tools/go.mod controller-gen
GENERATED := agent/record/zz_generated.deepcopy.go charts/haagent/crds/nodefailover.yaml
# $(call generate-into,SCRATCH,DIR) writes the files of GENERATED under DIR.
generate-into = $(CONTROLLER_GEN) object crd paths=./agent/record output:object:dir=$(1) output:crd:dir=$(1) && \
	mkdir -p $(2)/agent/record $(2)/charts/haagent/crds && \
	cp $(1)/zz_generated.deepcopy.go $(2)/agent/record/zz_generated.deepcopy.go && \
	{ printf '%s\n' '\# NodeFailover: the record of one failover of one dead node, written by the' \
		'\# haagent coordinator as it acts (kubectl get nodefailovers, or kubectl get nf).' \
		'\# Generated from agent/record/types.go by make generate; do not edit.'; \
	  sed '1{/^---$$/d}' $(1)/haagent.io_nodefailovers.yaml; } >$(2)/charts/haagent/crds/nodefailover.yaml
.PHONY: generate generate-check
generate:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(call generate-into,$$tmp,.)
	@echo "generate: wrote $(GENERATED)"
generate-check:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && $(call generate-into,$$tmp/gen,$$tmp/out) && \
	status=0 && for f in $(GENERATED); do \
		diff -u --label "$$f" --label "$$f (make generate)" "$$f" "$$tmp/out/$$f" >&2 || \
			{ echo "generate: $$f is not what the Go types in agent/record generate: run make generate" >&2; status=1; }; \
	done && exit $$status

## manifests: regenerate deploy/ from the Helm chart charts/haagent, its one source.
manifests: $(HELM)
	hack/manifests.sh $(HELM)

## manifests-check: fail, naming the file, when deploy/ is not what the chart renders.
manifests-check: $(HELM)
	hack/manifests.sh $(HELM) --check

helm-lint: $(HELM)
	$(HELM) lint --strict charts/haagent
	$(HELM) lint --strict charts/haagent --namespace haagent --values charts/haagent/ci/deploy-values.yaml
	$(HELM) lint --strict charts/haagent --namespace ha-system --values charts/haagent/ci/all-values.yaml

## demo: HAAGENT_DEMO_GROUND=hollow make demo runs it on hollow nodes (a real
## kubelet, kubemark, per node in a network namespace of its own) instead of
## fake kubelets: a few minutes more, no Prometheus.
demo: build
	hack/demo.sh

bench:
	hack/bench.sh

## bench-hollow: the haagent crash benchmark on hollow nodes (a kubemark
## kubelet and the agent in a network namespace per node), BENCH_HOLLOW_CRASHES
## crashes at each of BENCH_HOLLOW_SIZES; writes docs/BENCHMARKS-HOLLOW.md,
## docs/benchmarks-hollow.json and docs/bench/hollow-*.svg, the figures beside
## those of make bench (docs/benchmarks.json), which it leaves alone. No
## stock, chaos, cost or API-cost clusters. About 25 minutes on 2 cores.
BENCH_HOLLOW_SIZES ?= 7,20
BENCH_HOLLOW_CRASHES ?= 10
bench-hollow:
	hack/bench.sh -ground hollow -sizes $(BENCH_HOLLOW_SIZES) -crashes $(BENCH_HOLLOW_CRASHES) \
		-stock=false -tuned=false -chaos 0 -cost 0

## sim: the scale simulation's large sizes (1000 and 2000 members, loss,
## stalls) in virtual time; writes docs/SIMULATION.md. About 2 hours and 16
## GB of memory; make bench runs the sizes up to 500.
sim:
	hack/sim.sh

## apicost: what each agent costs the kube-apiserver (watches, requests by verb
## and resource, bytes, agent and apiserver memory and CPU; idle and across a
## failover) at 7, 20 and 50 nodes, modelled to 5000; writes docs/API-COST.md,
## docs/apicost.json and docs/bench/apicost-*.svg. About 10 minutes on 2 cores.
APICOST_SIZES ?= 7,20,50
apicost:
	HAAGENT_BENCH_SIM_BUDGET=0 hack/bench.sh -api-cost-only -api-cost-sizes $(APICOST_SIZES)

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "== $$fn in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

clean:
	rm -rf bin

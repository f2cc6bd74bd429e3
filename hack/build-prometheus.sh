#!/usr/bin/env bash
# Builds prometheus and promtool, used to check and unit-test the shipped
# alert rules (make rules-check) and by the end-to-end tests and make demo,
# where a real Prometheus scrapes every agent and evaluates those rules.
#
# They are built from the Go module github.com/prometheus/prometheus at the
# version below, into a cache outside the repository keyed by that version and
# the Go release:
#
#   ${HAAGENT_CACHE_DIR:-$HOME/.cache/haagent}/prometheus/<version>-<go>/bin/
#
# Progress goes to stderr; the bin directory is the only line on stdout, so
#   bin=$(hack/build-prometheus.sh)
# works. --print-dir prints that directory without building anything.
#
# A cold build takes several minutes on two cores (prometheus links every
# service discovery it has); later runs find the binaries and return at once.
# The web UI's assets are not embedded (they are built with npm, not Go): the
# HTTP API, which the tests use, is complete without them.
set -euo pipefail

# The Go module version of Prometheus 3.x: v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION=${HAAGENT_PROMETHEUS_VERSION:-v0.316.0}

# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_build_args "$@"

# Test infrastructure, built with the machine's own Go like the control plane,
# so that a change of haagent's toolchain does not throw the build away.
export GOTOOLCHAIN=${HAAGENT_CONTROL_PLANE_GOTOOLCHAIN:-local}

log() {
	echo "$(date '+%H:%M:%S') build-prometheus: $*" >&2
}

go_version=$(go env GOVERSION)
cache_root=${HAAGENT_CACHE_DIR:-$HOME/.cache/haagent}
bin_dir="$cache_root/prometheus/${PROMETHEUS_VERSION}-${go_version}/bin"

if $print_dir_only; then
	echo "$bin_dir"
	exit 0
fi

mkdir -p "$bin_dir"

# A second build of the same set waits for the first instead of repeating it.
lock_build_dir "$bin_dir"

scratch=""
cleanup() {
	[[ -z "$scratch" ]] || rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Prometheus reads its version from these variables (prometheus --version).
mod_minor=${PROMETHEUS_VERSION#v0.}
mod_minor=${mod_minor%%.*}
release="3.$((mod_minor - 300)).${PROMETHEUS_VERSION##*.}"
ldflags="-s -w"
ldflags+=" -X github.com/prometheus/common/version.Version=${release}"
ldflags+=" -X github.com/prometheus/common/version.Revision=${PROMETHEUS_VERSION}"
ldflags+=" -X github.com/prometheus/common/version.Branch=module"

# The smaller first, so a broken toolchain or proxy shows up early.
targets=(promtool prometheus)

log "github.com/prometheus/prometheus ${PROMETHEUS_VERSION} (Prometheus ${release}), ${go_version}"
log "into ${bin_dir}"
total_start=$(date +%s)
for name in "${targets[@]}"; do
	out="$bin_dir/$name"
	if [[ -x "$out" ]]; then
		log "$name: already built, skipping"
		continue
	fi
	log "$name: building github.com/prometheus/prometheus/cmd/$name@${PROMETHEUS_VERSION}"
	start=$(date +%s)
	# go install into a scratch GOBIN, then rename: an interrupted build leaves
	# no half-written binary that a later run would take for a good one.
	scratch=$(mktemp -d "$bin_dir/.build.XXXXXX")
	(CGO_ENABLED=0 GOBIN="$scratch" go install -trimpath -ldflags "$ldflags" \
		"github.com/prometheus/prometheus/cmd/$name@${PROMETHEUS_VERSION}") 9>&-
	mv -f "$scratch/$name" "$out"
	rm -rf "$scratch"
	scratch=""
	log "$name: done in $(($(date +%s) - start))s"
done
log "all binaries ready in $(($(date +%s) - total_start))s"
echo "$bin_dir"

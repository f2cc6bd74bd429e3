#!/usr/bin/env bash
# Builds the control-plane binaries used by the end-to-end tests (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) and
# kubemark, the hollow kubelet (the real kubelet with a fake container
# runtime), from the versions pinned in test/go.mod.
#
# The binaries go to a cache outside the repository, keyed by the Kubernetes,
# etcd and Go versions, so that a version bump builds a fresh set and an
# unchanged checkout reuses the old one:
#
#   ${HAAGENT_CACHE_DIR:-$HOME/.cache/haagent}/control-plane/<k8s>-<etcd>-<go>/bin/
#
# Progress goes to stderr; the bin directory is the only line on stdout, so
#   bin=$(hack/build-control-plane.sh)
# works. --print-dir prints that directory without building anything.
#
# A cold build takes a long while on a small machine (kube-apiserver alone is
# several minutes on two cores); later runs find the binaries and return at once.
# kubemark comes last: a cache built before it was added keeps its other
# binaries and builds only kubemark.
set -euo pipefail

# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parse_build_args "$@"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
test_dir="$root/test"

# The control plane is test infrastructure, built with the machine's own Go
# whatever toolchain the Makefile picks for haagent, so that a change of that
# toolchain does not throw away a build of many minutes.
export GOTOOLCHAIN=${HAAGENT_CONTROL_PLANE_GOTOOLCHAIN:-local}

log() {
	echo "$(date '+%H:%M:%S') build-control-plane: $*" >&2
}

# Versions come from the test module itself, so the cache key can never
# disagree with what is actually compiled.
mod_version() {
	(cd "$test_dir" && go list -m -f '{{.Version}}' "$1")
}
k8s_version=$(mod_version k8s.io/kubernetes)
etcd_version=$(mod_version go.etcd.io/etcd/server/v3)
go_version=$(go env GOVERSION)

cache_root=${HAAGENT_CACHE_DIR:-$HOME/.cache/haagent}
bin_dir="$cache_root/control-plane/${k8s_version}-${etcd_version}-${go_version}/bin"

if $print_dir_only; then
	echo "$bin_dir"
	exit 0
fi

mkdir -p "$bin_dir"

# Two builds of the same set at once (say, two terminals running make e2e)
# would each spend many minutes on the same work; the second waits instead.
lock_build_dir "$bin_dir"

# Leftovers of a build that was killed too hard to clean up after itself.
# Safe under the lock: no other build of this set is running.
rm -f "$bin_dir"/.*.tmp.*

tmp_files=()
cleanup() {
	local f
	for f in "${tmp_files[@]}"; do
		rm -f "$f"
	done
}
trap cleanup EXIT
# Exit through the EXIT trap on an interrupt too, so no temporary file stays.
trap 'exit 130' INT
trap 'exit 143' TERM

# Kubernetes reads its own version from these variables; unstamped, the
# binaries report v0.0.0-master, which confuses version skew checks and kubectl.
k8s_minor=${k8s_version#v1.}
k8s_minor=${k8s_minor%%.*}
build_date=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
k8s_ldflags="-s -w"
k8s_ldflags+=" -X k8s.io/component-base/version.gitVersion=${k8s_version}"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
k8s_ldflags+=" -X k8s.io/component-base/version.gitMinor=${k8s_minor}"
k8s_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
k8s_ldflags+=" -X k8s.io/component-base/version.buildDate=${build_date}"
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${etcd_version}"

# name|package|ldflags. The smallest first, so a broken toolchain shows up early.
targets=(
	"etcd|go.etcd.io/etcd/server/v3|${etcd_ldflags}"
	"kube-scheduler|k8s.io/kubernetes/cmd/kube-scheduler|${k8s_ldflags}"
	"kube-controller-manager|k8s.io/kubernetes/cmd/kube-controller-manager|${k8s_ldflags}"
	"kube-apiserver|k8s.io/kubernetes/cmd/kube-apiserver|${k8s_ldflags}"
	"kubectl|k8s.io/kubernetes/cmd/kubectl|${k8s_ldflags}"
	"kubemark|k8s.io/kubernetes/cmd/kubemark|${k8s_ldflags}"
)

log "kubernetes ${k8s_version}, etcd ${etcd_version}, ${go_version}"
log "into ${bin_dir}"
total_start=$(date +%s)
for target in "${targets[@]}"; do
	IFS='|' read -r name pkg ldflags <<<"$target"
	out="$bin_dir/$name"
	if [[ -x "$out" ]]; then
		log "$name: already built, skipping"
		continue
	fi
	log "$name: building $pkg"
	start=$(date +%s)
	# Build under a temporary name and rename at the end: an interrupted build
	# leaves no half-written file that a later run would take for a good one.
	tmp="$bin_dir/.$name.tmp.$$"
	tmp_files+=("$tmp")
	# CGO off, as the Kubernetes release builds do for these binaries: static,
	# and no C toolchain needed.
	# 9>&-: the compiler must not inherit the lock, or a build left running
	# by a killed script would keep every later one waiting.
	(cd "$test_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") 9>&-
	mv -f "$tmp" "$out"
	log "$name: done in $(($(date +%s) - start))s"
done
log "all binaries ready in $(($(date +%s) - total_start))s"
echo "$bin_dir"

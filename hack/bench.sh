#!/usr/bin/env bash
# make bench: failover latency, measured on a real Kubernetes control plane,
# with haagent and with the stock controllers alone, printed side by side.
#
# Three clusters of 7 nodes, one after the other (see test/cmd/haagent-bench):
# haagent (5 crashes, each node handed back before the next), stock with
# tuned timings (3 crashes) and stock with default timings (1 crash, whose
# eviction comes about 6 minutes after it). About 10 minutes in all; the
# results also go to _output/bench/results.json.
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh: the first build takes about 20 minutes and
# prints its progress. Crashed nodes are cut off the network with iptables
# rules on loopback, so this needs root; as root it installs the iptables
# package with apt-get when it is missing.
#
# Extra arguments go to the benchmark program, for example
#   hack/bench.sh -crashes 2 -stock=false     # a quick run, no 7-minute baseline
# (-h lists them). It exits 0 only when every phase of every crash was measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() {
	echo "bench: $*" >&2
}

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

if [[ $EUID -ne 0 ]]; then
	log "run as root: crashed nodes are cut off the network with iptables rules"
	exit 1
fi
ensure_iptables || {
	log "iptables is missing and this is not root"
	exit 1
}

bin_dir=$("$root/hack/build-control-plane.sh" | tail -n 1)

mkdir -p "$root/_output/bin"
log "building haagent and the benchmark program (test/cmd/haagent-bench)"
go -C "$root" build -o "$root/_output/bin/haagent" ./cmd/haagent
(cd "$root/test" && go build -o "$root/_output/bin/haagent-bench" ./cmd/haagent-bench)

cd "$root/test"
exec "$root/_output/bin/haagent-bench" --control-plane-bin "$bin_dir" --haagent "$root/_output/bin/haagent" "$@"

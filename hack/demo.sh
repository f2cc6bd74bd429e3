#!/usr/bin/env bash
# make demo: a node dies on a real Kubernetes control plane and haagent
# fails it over; then the same crash on a cluster without haagent, handled
# by the stock controllers alone; then the two side by side. The timelines
# are printed as they happen, and every figure is measured in this run.
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh: the first build takes about 20 minutes and
# prints its progress; later runs start at once. It uses bin/haagent, which
# make demo builds first. A crashed node is cut off the network with
# iptables rules on loopback, so this needs root; as root it installs the
# iptables package with apt-get when it is missing.
#
# The demo takes about 2 minutes. Environment:
#   HAAGENT_DEMO_STOCK_FULL=1   also wait for the stock eviction (default
#                               toleration 300 s): about 6 more minutes
#   HAAGENT_DEMO_GROUND=hollow  (or the argument -ground hollow) every node a
#                               real kubelet (kubemark, fake container
#                               runtime) in a network namespace of its own,
#                               beside its agent, instead of a fake kubelet
#                               on loopback: a few minutes more (a hollow
#                               kubelet registers in 10 s to 3 minutes), no
#                               Prometheus (the host cannot reach the agents
#                               in the namespaces); e.g.
#                               HAAGENT_DEMO_GROUND=hollow make demo
#   HAAGENT_CACHE_DIR           where the control-plane binaries and prometheus
#                               are cached
# Extra arguments go to the demo program (--help lists them).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() {
	echo "demo: $*" >&2
}

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

if [[ $EUID -ne 0 ]]; then
	log "run as root: a crashed node is cut off the network with iptables rules"
	exit 1
fi
ensure_iptables || {
	log "iptables is missing and this is not root"
	exit 1
}

bin="$root/bin/haagent"
[[ -x "$bin" ]] || {
	log "$bin is missing; run make demo (or make build first)"
	exit 1
}

bin_dir=$("$root/hack/build-control-plane.sh" | tail -n 1)
# A real Prometheus scrapes the agents and evaluates the shipped alert rules;
# the timeline shows each alert firing and resolving.
prom_dir=$("$root/hack/build-prometheus.sh" | tail -n 1)

mkdir -p "$root/_output/bin"
log "building the demo program (test/cmd/haagent-demo)"
(cd "$root/test" && go build -o "$root/_output/bin/haagent-demo" ./cmd/haagent-demo)

cd "$root/test"
exec "$root/_output/bin/haagent-demo" --control-plane-bin "$bin_dir" --prometheus-bin "$prom_dir" --haagent "$bin" "$@"

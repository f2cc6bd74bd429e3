#!/usr/bin/env bash
# make bench: node failover measured on a real Kubernetes control plane, with
# haagent and with the stock controllers alone; writes docs/BENCHMARKS.md,
# docs/benchmarks.json (every sample, schema haagent-bench/v2) and the plots
# docs/bench/*.svg (see test/cmd/haagent-bench).
#
# For each size of -sizes (default 7 and 20 nodes), three clusters:
#   - haagent: a 30 s quiet window sampling every agent's memory, CPU and
#     gossip traffic; 20 crashes, one at a time; then 1 minute each of 10 %
#     and 30 % packet loss, agent stalls (SIGSTOP 2-5 s) and agent restarts,
#     counting wrong actions;
#   - stock with tuned timings (10 crashes, one at a time) and stock with
#     default timings (3 overlapping crashes, 20 s apart: its eviction comes
#     about 6 minutes after a crash). These two run side by side, beside the
#     haagent cluster's chaos phases, never beside its crashes.
# Time, from cycles measured at 7 nodes on a 2-core machine (a haagent crash,
# return and hand-back: 20-29 s; a tuned one about 15 s; the overlapping
# default ones about 7.5 minutes in all): per size about 10 minutes of
# haagent cluster (start, cost window, 20 crashes), then about 7.5 minutes
# for the stock clusters, which hide the 5 minutes of chaos: about 17 minutes
# at 7 nodes, 19 at 20 nodes (slower crashes), 35-40 minutes for the default
# run. Progress is printed as it goes.
#
# With -api-cost (default 1m) each haagent cluster also runs with the
# apiserver's audit log and measures what every agent costs the API server
# (an idle window, then one crash and its failover), and -api-cost-sizes
# (default 100) adds a cluster per size for that alone: about 10 minutes
# more. make apicost runs only that part (-api-cost-only) and writes
# docs/API-COST.md; see test/cmd/haagent-bench/apicost.go.
#
# Then the scale simulation (see below), HAAGENT_BENCH_SIM_BUDGET (22m) more.
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh: the first build takes about 20 minutes and
# prints its progress. Crashed nodes are cut off the network with iptables
# rules on loopback, so this needs root; as root it installs the iptables
# package with apt-get when it is missing.
#
# Extra arguments go to the benchmark program (-h lists them), for example
#   hack/bench.sh -sizes 5 -crashes 2 -tuned-crashes 1 -stock=false -chaos 10s -docs /some/dir
# for a quick look that leaves docs/ alone. To add the simulator's section
# to the report without measuring again:
#   hack/bench.sh -report-from docs/benchmarks.json -sim-md SIM.md -sim-json SIM.json
# It exits 0 only when every part ran and every phase of every crash was
# measured.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() {
	echo "bench: $*" >&2
}

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

mkdir -p "$root/_output/bin"
build_bench() {
	(cd "$root/test" && go build -o "$root/_output/bin/haagent-bench" ./cmd/haagent-bench)
}

# Help and report rewriting need no cluster, no root and no control plane.
for arg in "$@"; do
	case "$arg" in
	-h | -help | --help | -report-from | --report-from | -report-from=* | --report-from=*)
		build_bench
		cd "$root/test"
		exec "$root/_output/bin/haagent-bench" "$@"
		;;
	esac
done

if [[ $EUID -ne 0 ]]; then
	log "run as root: crashed nodes are cut off the network with iptables rules"
	exit 1
fi
ensure_iptables || {
	log "iptables is missing and this is not root"
	exit 1
}

bin_dir=$("$root/hack/build-control-plane.sh" | tail -n 1)

log "building haagent and the benchmark program (test/cmd/haagent-bench)"
# Static, as the image ships it (a cgo build maps about 24 MiB more).
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
CGO_ENABLED=0 go -C "$root" build -ldflags "-X github.com/haagent/haagent/internal/version.Commit=$commit" \
	-o "$root/_output/bin/haagent" ./cmd/haagent
build_bench

# Where the report goes: -docs DIR of the arguments, else docs/.
docs_dir="$root/docs"
args=("$@")
for i in "${!args[@]}"; do
	case "${args[$i]}" in
	-docs | --docs) docs_dir=${args[$((i + 1))]:-$docs_dir} ;;
	-docs=* | --docs=*) docs_dir=${args[$i]#*=} ;;
	esac
done

cd "$root/test"
export HAAGENT_BENCH_SCRIPT=1
"$root/_output/bin/haagent-bench" --control-plane-bin "$bin_dir" --haagent "$root/_output/bin/haagent" "$@"

# make apicost: the API-cost figures alone, no simulation.
for arg in "$@"; do
	case "$arg" in
	-api-cost-only | --api-cost-only | -api-cost-only=true | --api-cost-only=true) exit 0 ;;
	esac
done

# The scale simulation (test/cmd/haagent-sim): gossip and agreement of 50 to
# 1000 members in one process each, both profiles, 5 % loss at 100 members.
# It runs the sizes that fit in HAAGENT_BENCH_SIM_BUDGET (default 22m; 0
# skips it) and says which it skipped and why; its tables, JSON and charts
# then join the report.
sim_budget=${HAAGENT_BENCH_SIM_BUDGET:-22m}
if [[ $sim_budget == 0 ]]; then
	log "scale simulation skipped (HAAGENT_BENCH_SIM_BUDGET=0)"
	exit 0
fi
log "scale simulation (test/cmd/haagent-sim), budget $sim_budget"
go build -o "$root/_output/bin/haagent-sim" ./cmd/haagent-sim
sim_dir="$root/_output/bench/sim"
mkdir -p "$sim_dir" "$docs_dir/bench"
sim_rc=0
# Paths inside the checkout are given relative to it: the report names them.
sim_docs=$docs_dir
[[ $sim_docs == "$root"/* ]] && sim_docs=${sim_docs#"$root"/}
(cd "$root" && "$root/_output/bin/haagent-sim" -n 50,100,250,500,1000 -profiles default,fast -loss-sweep -loss-sizes 100 \
	-budget "$sim_budget" -converge-timeout 2m -max-rss-mib 6144 \
	-json "$sim_docs/simulation.json" -svg "$sim_docs/bench/simulation") | tee "$sim_dir/tables.txt" || sim_rc=$?
{
	echo "Command: \`hack/bench.sh\` runs \`haagent-sim -n 50,100,250,500,1000 -profiles default,fast -loss-sweep -loss-sizes 100 -budget $sim_budget -converge-timeout 2m -max-rss-mib 6144\` (exit status $sim_rc; 3 means wrong actions). Charts: [detection time against N](bench/simulation-detection.svg), [traffic per member against N](bench/simulation-traffic.svg). Raw samples: \`simulation.json\`."
	echo
	echo '```'
	cat "$sim_dir/tables.txt"
	echo '```'
} >"$sim_dir/section.md"
"$root/_output/bin/haagent-bench" -report-from "$docs_dir/benchmarks.json" -docs "$docs_dir" \
	-sim-md "$sim_dir/section.md" -sim-json "$docs_dir/simulation.json"
exit "$sim_rc"

#!/usr/bin/env bash
# make bench: node failover measured on a real Kubernetes control plane, with
# haagent and with the stock controllers alone; writes docs/BENCHMARKS.md,
# docs/benchmarks.json (every sample, schema haagent-bench/v2) and the plots
# docs/bench/*.svg (see test/cmd/haagent-bench).
#
# For each size of -sizes (default 7 and 20 nodes), three clusters:
#   - haagent: a 30 s quiet window sampling every agent's memory, CPU and
#     gossip traffic; 20 crashes, one at a time (every 4th waits for the
#     StatefulSet pod to run elsewhere, 17 s or more after the crash; the
#     others bring the node back as soon as every other phase was seen);
#     then 1 minute each of 10 % and 30 % packet loss, agent stalls
#     (SIGSTOP 2-5 s) and agent restarts, counting wrong actions;
#   - stock with tuned timings (10 crashes, one at a time) and stock with
#     default timings (3 overlapping crashes, 20 s apart: its eviction comes
#     about 6 minutes after a crash).
# The stock clusters and the scale simulation run in side windows, beside
# the haagent clusters' chaos phases, never beside a cost window or
# haagent's crashes: the default stock clusters of every size and the
# simulation beside the first size's chaos (about 7.5 minutes, the stock
# default's 300 s wait), the tuned ones beside the last size's (about 5
# minutes). Measured at 7 nodes on a 2-core machine: a haagent crash cycle
# (crash, return, hand-back) takes 7-9 s, 24 s when it waits for the
# StatefulSet pod. About 25 minutes in all for the default run. Progress is
# printed as it goes.
#
# The API cost (what every agent costs the API server) is measured by make
# apicost (-api-cost-only), not here: this script passes -api-cost=0
# -api-cost-sizes= unless the arguments say otherwise. See
# test/cmd/haagent-bench/apicost.go.
#
# The scale simulation (test/cmd/haagent-sim) runs the sizes that fit in
# HAAGENT_BENCH_SIM_BUDGET (default 9m; 0 skips it).
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh: the first build takes about 20 minutes and
# prints its progress. Crashed nodes are cut off the network with iptables
# rules on loopback, so this needs root; as root it installs the iptables
# package with apt-get when it is missing.
#
# -ground hollow (make bench-hollow) runs the nodes as real kubelets
# (kubemark, a fake container runtime), each in a network namespace of its
# own beside its agent, instead of fake kubelets on loopback; it writes
# docs/BENCHMARKS-HOLLOW.md and docs/benchmarks-hollow.json, with the
# figures beside those of docs/benchmarks.json, and leaves the fake run's
# files alone. No scale simulation, no tuned stock timings (a real kubelet
# renews its Lease every 10 s), no API cost. A killed hollow run's
# namespaces are removed by the next hack/e2e.sh (or ip netns delete).
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

# make apicost measures the API cost alone; make bench leaves it to it.
api_cost_only=false
for arg in "$@"; do
	case "$arg" in
	-api-cost-only | --api-cost-only | -api-cost-only=true | --api-cost-only=true) api_cost_only=true ;;
	esac
done

# The hollow ground (make bench-hollow) writes its own report and leaves
# BENCHMARKS.md, and so the simulation's section of it, alone.
hollow=false
for i in "${!args[@]}"; do
	case "${args[$i]}" in
	-ground | --ground) [[ ${args[$((i + 1))]:-} == hollow ]] && hollow=true ;;
	-ground=hollow | --ground=hollow) hollow=true ;;
	esac
done
if $hollow; then
	cd "$root/test"
	export HAAGENT_BENCH_SCRIPT=1
	exec "$root/_output/bin/haagent-bench" --control-plane-bin "$bin_dir" --haagent "$root/_output/bin/haagent" \
		--api-cost=0 --api-cost-sizes= "$@"
fi

# The scale simulation (test/cmd/haagent-sim) runs beside the first side
# window of the benchmark (the stock clusters' 300 s waits and the chaos
# phases), never beside a cost window or crashes. It runs the sizes that fit
# in HAAGENT_BENCH_SIM_BUDGET (0 skips it) and says which it skipped and
# why; its tables, JSON and charts then join the report.
sim_budget=${HAAGENT_BENCH_SIM_BUDGET:-9m}
sim_dir="$root/_output/bench/sim"
sim_docs=$docs_dir
# Paths inside the checkout are given relative to it: the report names them.
[[ $sim_docs == "$root"/* ]] && sim_docs=${sim_docs#"$root"/}
# The shipped default (auto) beside memberlist's LAN timings (default), 20
# crashes per size; 5 % loss at 100 members; the sizes up to 500 fit the
# window (N=1000 takes about 18 minutes of wall time on 2 busy cores: make
# sim runs the large sizes). N=20 runs first, in groups of 20 members
# crashed twice each (-repeat 10): the calibration against the real
# clusters' "dead on every survivor".
sim_cal_flags=(-n 20 -profiles auto,default -crashes 2 -repeat 10 -quiet 60s)
sim_flags=(-n 100,500 -profiles auto,default -crashes 20 -quiet 60s -loss-sweep -loss-sizes 100
	-budget "$sim_budget" -max-rss-mib 6144)
extra=()
if ! $api_cost_only; then
	extra=(--api-cost=0 --api-cost-sizes=)
	if [[ $sim_budget != 0 ]]; then
		log "building the scale simulation (test/cmd/haagent-sim), budget $sim_budget"
		(cd "$root/test" && go build -o "$root/_output/bin/haagent-sim" ./cmd/haagent-sim)
		rm -rf "$sim_dir"
		mkdir -p "$sim_dir" "$docs_dir/bench"
		printf -v cal_cmd '%q' "$root/_output/bin/haagent-sim"
		for a in "${sim_cal_flags[@]}" -json "$sim_docs/simulation-n20.json" -svg _output/bench/sim/n20; do
			printf -v cal_cmd '%s %q' "$cal_cmd" "$a"
		done
		printf -v sim_cmd '%q' "$root/_output/bin/haagent-sim"
		for a in "${sim_flags[@]}" -json "$sim_docs/simulation.json" -svg "$sim_docs/bench/simulation"; do
			printf -v sim_cmd '%s %q' "$sim_cmd" "$a"
		done
		# The exit status is the worst of the two (3: wrong actions).
		printf -v sim_cmd 'cd %q && { %s >%q; a=$?; %s >%q; b=$?; echo $((a > b ? a : b)) >%q; }' \
			"$root" "$cal_cmd" "$sim_dir/n20.txt" "$sim_cmd" "$sim_dir/tables.txt" "$sim_dir/rc"
		extra+=(--beside "$sim_cmd")
	else
		log "scale simulation skipped (HAAGENT_BENCH_SIM_BUDGET=0)"
	fi
fi

cd "$root/test"
export HAAGENT_BENCH_SCRIPT=1
rc=0
"$root/_output/bin/haagent-bench" --control-plane-bin "$bin_dir" --haagent "$root/_output/bin/haagent" "${extra[@]}" "$@" || rc=$?
if [[ ! -f $sim_dir/rc ]]; then
	exit "$rc"
fi
sim_rc=$(cat "$sim_dir/rc")
{
	echo "Command: \`hack/bench.sh\` runs \`haagent-sim ${sim_cal_flags[*]}\` and then \`haagent-sim ${sim_flags[*]}\` beside the benchmark's first side window (exit status $sim_rc; 3 means wrong actions). Every time is on the simulated clock (testing/synctest): what it would be if every member had a CPU of its own. Charts: [detection time against N](bench/simulation-detection.svg), [traffic per member against N](bench/simulation-traffic.svg). Raw samples: \`simulation-n20.json\`, \`simulation.json\`. The sizes from 1000 up are in [SIMULATION.md](SIMULATION.md) (\`make sim\`)."
	echo
	echo "The N=20 run the calibration above reads:"
	echo
	echo '```'
	cat "$sim_dir/n20.txt"
	echo '```'
	echo
	echo '```'
	cat "$sim_dir/tables.txt"
	echo '```'
} >"$sim_dir/section.md"
"$root/_output/bin/haagent-bench" -report-from "$docs_dir/benchmarks.json" -docs "$docs_dir" \
	-sim-md "$sim_dir/section.md" -sim-json "$docs_dir/simulation.json" \
	-sim-calibration-json "$docs_dir/simulation-n20.json" || rc=$?
if [[ $rc == 0 ]]; then
	rc=$sim_rc
fi
exit "$rc"

#!/usr/bin/env bash
# make sim: the scale simulation's large sizes (test/cmd/haagent-sim, in
# virtual time), which do not fit beside make bench: 1000 members with the
# shipped default (auto) and memberlist's LAN timings (default), 1 % and 5 %
# loss, agent stalls at 500 and 1000, and 2000 members. Each run is a
# process of its own; every time is on the simulated clock, so the machine's
# load changes how long it takes, not what it measures. Measured on 2 busy
# cores: about 18 minutes of wall time for 1000 members and 26 to 37 for
# 2000 (37 with auto's 300 ms band), with a peak of 11.7 GB resident at
# 2000; 5000 would need about 75 GB (the simulator's memory per member
# grows as N, see docs/SIMULATION.md). Needs 16 GB free and about 2 hours.
#
# It writes docs/SIMULATION.md (every run's command and tables) and
# docs/simulation/*.json (every sample). SIM_RUNS=name,... runs some of
# the runs only (names below); the file then holds their sections and those
# of earlier runs on this machine (kept in _output/sim).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/docs/simulation"
md="$root/docs/SIMULATION.md"
mkdir -p "$out" "$root/_output/bin" "$root/_output/sim"

echo "sim: building test/cmd/haagent-sim" >&2
(cd "$root/test" && go build -o "$root/_output/bin/haagent-sim" ./cmd/haagent-sim)

# name|flags. n2000 crashes no Lease holder: votes about a dead holder go
# to every member, which at 2000 takes the process past the memory it has
# (the holder's crash is measured at 1000 and below).
runs=(
	"n1000|-n 1000 -profiles auto,default -crashes 20 -quiet 60s -settle 2m -max-rss-mib 8192 -timeout 3h"
	"n1000-loss|-n 1000 -profiles auto -loss 0.01 -loss-sweep -loss-sizes 1000 -crashes 20 -quiet 60s -timeout 2h"
	"stalls|-n 500,1000 -profiles auto -stalls 6 -loss-sweep -loss-sizes 500,1000 -crashes 20 -quiet 60s -timeout 3h"
	"n2000|-n 2000 -profiles auto -crashes 20 -coordinator-crashes 0 -quiet 20s -settle 3m -gc-percent 100 -max-rss-mib 14000 -timeout 2h"
)

want=${SIM_RUNS:-}
rc=0
for r in "${runs[@]}"; do
	name=${r%%|*}
	flags=${r#*|}
	if [[ -n $want && ,$want, != *",$name,"* ]]; then
		continue
	fi
	echo "sim: $name: haagent-sim $flags" >&2
	run_rc=0
	# shellcheck disable=SC2086 # flags are words
	(cd "$root" && "$root/_output/bin/haagent-sim" $flags -json "docs/simulation/$name.json" \
		-svg "docs/simulation/$name") >"$root/_output/sim/$name.txt" || run_rc=$?
	if ((run_rc > rc)); then
		rc=$run_rc
	fi
	{
		echo "## $name"
		echo
		echo "\`haagent-sim $flags\` (commit $(git -C "$root" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), exit status $run_rc; 3 means wrong actions)"
		echo
		echo '```'
		cat "$root/_output/sim/$name.txt"
		echo '```'
	} >"$root/_output/sim/$name.md"
done

{
	echo "# Scale simulation, large sizes"
	echo
	echo "<!-- Written by hack/sim.sh (make sim); edits are lost on the next run. -->"
	echo
	echo "haagent's gossip, agreement and decision core, N members in one process on the in-memory network \`internal/simnet\`, in a \`testing/synctest\` bubble: every time is on the simulated clock, what it would be if every member had a CPU of its own. The sizes up to 500 and the N=20 calibration run in \`make bench\` ([BENCHMARKS.md](BENCHMARKS.md#simulation)). Raw samples: \`simulation/<name>.json\`."
	echo
	for r in "${runs[@]}"; do
		name=${r%%|*}
		if [[ -f $root/_output/sim/$name.md ]]; then
			cat "$root/_output/sim/$name.md"
			echo
		fi
	done
} >"$md"
echo "sim: wrote $md" >&2
exit "$rc"

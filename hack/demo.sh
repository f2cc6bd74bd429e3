#!/usr/bin/env bash
# make demo: five haagent agents gossip on loopback; one is killed without
# warning and the survivors detect it. The timeline is printed as it happens.
#
# This is the gossip-only demo: no Kubernetes control plane is started and
# nothing is failed over yet (cordon and eviction come with the failover
# work). It needs nothing but the haagent binary (make build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$root/bin/haagent"
[[ -x "$bin" ]] || { echo "demo: $bin missing; run make build" >&2; exit 1; }

n=5
profile=${HAAGENT_DEMO_PROFILE:-fast}
# A random 127.x.y.0/24: all of 127/8 is loopback, and a random one keeps
# two demos on one machine apart.
base="127.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1))."
dir=$(mktemp -d -t haagent-demo-XXXXXX)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

start=$EPOCHREALTIME
say() { printf '%8s  %s\n' "$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "T+%.2fs", b-a}')" "$*"; }

state_of() { # observer-index member-name
	"$bin" members --timeout 1s --agent "http://${base}$1:9750" 2>/dev/null |
		awk -v m="$2" '$1 == m { print $3 }'
}

printf 'checks: []\nrejoin-interval: 2s\n' >"$dir/config.yaml"
say "starting $n agents on ${base}1..${base}$n (profile $profile), logs in $dir"
for i in $(seq 1 $n); do
	join=()
	((i > 1)) && join=(--join "${base}1:7946")
	"$bin" run --config "$dir/config.yaml" --node-name "node-$i" --zone "zone-$(((i - 1) % 2 + 1))" \
		--bind-addr "${base}$i" --advertise-addr "${base}$i" --http-addr "${base}$i:9750" \
		--gossip-profile "$profile" --log-format console "${join[@]}" >"$dir/node-$i.log" 2>&1 &
	pids+=($!)
done

for i in $(seq 1 $n); do
	until [[ $("$bin" members --timeout 1s --agent "http://${base}$i:9750" 2>/dev/null | grep -c ' alive ') == "$n" ]]; do
		sleep 0.1
	done
	say "node-$i sees $n alive members"
done
echo
"$bin" members --agent "http://${base}1:9750" -o wide
echo

victim=$n
say "killing node-$victim with SIGKILL (no goodbye: peers must find out by probing)"
kill -9 "${pids[$((victim - 1))]}"
wait "${pids[$((victim - 1))]}" 2>/dev/null || true
killed=$EPOCHREALTIME
declare -A seen
pending=$((n - 1))
while ((pending > 0)); do
	for i in $(seq 1 $((n - 1))); do
		s=$(state_of "$i" "node-$victim")
		if [[ -n "$s" && "$s" != alive && "${seen[$i:$s]:-}" == "" ]]; then
			seen[$i:$s]=1
			say "node-$i sees node-$victim $s ($(awk -v a="$killed" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.2fs", b-a}') after the kill)"
			[[ "$s" == dead ]] && pending=$((pending - 1))
		fi
	done
	awk -v a="$killed" -v b="$EPOCHREALTIME" 'BEGIN{exit !(b-a > 120)}' && { echo "demo: not detected within 120s" >&2; exit 1; }
	sleep 0.05
done
echo
"$bin" members --agent "http://${base}1:9750"
echo

say "stopping node-4 with SIGTERM (graceful: it leaves the group)"
kill -TERM "${pids[3]}"
until [[ "$(state_of 1 node-4)" == left ]]; do sleep 0.05; done
say "node-1 sees node-4 left"
echo
echo "Detection only: haagent does not fail nodes over yet. The end-to-end demo with a"
echo "real control plane, cordon and eviction replaces this one when failover lands."

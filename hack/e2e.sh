#!/usr/bin/env bash
# Runs the end-to-end tests against a real control plane and real haagent
# processes.
#
#   hack/e2e.sh                         # every end-to-end test
#   hack/e2e.sh -run TestAgents -v      # extra arguments go to go test
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh, then runs go test in the test module with
# HAAGENT_CONTROL_PLANE_BIN pointing at them. The first build takes many
# minutes; later runs start testing at once. The tests build the haagent
# binary themselves, once per run.
#
# Network faults (crashed nodes, partitions, packet loss) are iptables rules
# on the loopback interface, so the tests that use them need root and
# iptables. Run as root, this script installs the iptables package with
# apt-get when it is missing. Without root those tests are skipped.
#
# Every rule the tests add carries the comment haagent-e2e-<pid>-<run id>,
# pid being the test process's. A test removes its rules when it ends; if the
# test process was killed first, this script removes them, before the tests
# and again on exit, whatever the outcome. Rules of a test process still
# alive (another run going on at the same time) are left alone.
#
# Tests that give each node a network namespace of its own name the
# namespaces haagent-e2e-<pid>-<run id>-<node> (the bridge's being
# ...-hub). Those of a test process that is gone are removed the same way,
# after killing any process still inside them.
#
# Environment:
#   HAAGENT_CACHE_DIR      where the binaries are cached (default ~/.cache/haagent)
#   HAAGENT_E2E_TIMEOUT    go test -timeout (default 60m: the e2e package takes
#                          about 40 minutes on 2 cores, a third of it on the
#                          hollow ground)
#   HAAGENT_E2E_PACKAGES   packages to test (default ./...)
#   HAAGENT_E2E_KEEP=1     keep each control plane's run directory after its test
#   HAAGENT_PROMETHEUS_BIN where prometheus is (this script builds it and sets this)
#   HAAGENT_HELM           helm binary for the chart test (make e2e installs it and
#                          sets this); unset, that test is skipped, or fails under CI
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() {
	echo "e2e: $*" >&2
}

# shellcheck source=hack/lib.sh
source "$root/hack/lib.sh"

# remove_leftover_rules deletes every rule whose comment is
# haagent-e2e-<pid>-... with no process <pid> any more.
remove_leftover_rules() {
	{ set +x; } 2>/dev/null
	if [[ $EUID -ne 0 ]] || ! have_iptables; then
		return 0
	fi
	local table="" line comment pid removed=0
	local -a rule
	while IFS= read -r line; do
		case "$line" in
		\**) table=${line#\*} ;;
		"-A "*"--comment haagent-e2e-"* | "-A "*"--comment \"haagent-e2e-"*)
			comment=${line#*--comment }
			comment=${comment#\"}
			pid=${comment#haagent-e2e-}
			pid=${pid%%-*}
			if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
				continue
			fi
			# iptables-save prints conntrack addresses without their /32,
			# which iptables -D then fails to match: put it back.
			line=$(sed -E 's#(--ct(orig|repl)(src|dst) [0-9.]+)( |$)#\1/32\4#g' <<<"$line")
			# The rules carry no spaces or quotes, so splitting on blanks is exact.
			read -r -a rule <<<"${line#-A }"
			if iptables -w -t "$table" -D "${rule[@]}"; then
				removed=$((removed + 1))
			fi
			;;
		esac
	done < <(iptables-save 2>/dev/null)
	if ((removed > 0)); then
		log "removed $removed leftover firewall rule(s) of ended test runs (comment haagent-e2e-*)"
	fi
}

# remove_leftover_netns deletes every network namespace named
# haagent-e2e-<pid>-... with no process <pid> any more, killing first what
# still runs in it (a namespace lives on while a process is inside).
remove_leftover_netns() {
	{ set +x; } 2>/dev/null
	if [[ $EUID -ne 0 ]] || ! command -v ip >/dev/null; then
		return 0
	fi
	local name pid removed=0
	local -a pids
	while read -r name _; do
		case "$name" in
		haagent-e2e-*) ;;
		*) continue ;;
		esac
		pid=${name#haagent-e2e-}
		pid=${pid%%-*}
		if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
			continue
		fi
		mapfile -t pids < <(ip netns pids "$name" 2>/dev/null)
		if ((${#pids[@]} > 0)); then
			kill -KILL "${pids[@]}" 2>/dev/null || true
		fi
		if ip netns delete "$name"; then
			removed=$((removed + 1))
		fi
	done < <(ip netns list 2>/dev/null)
	if ((removed > 0)); then
		log "removed $removed leftover network namespace(s) of ended test runs (haagent-e2e-*)"
	fi
}

remove_leftovers() {
	remove_leftover_rules
	remove_leftover_netns
}

ensure_iptables || log "iptables is missing and this is not root: the tests with network faults will be skipped"
remove_leftovers
trap remove_leftovers EXIT
# Exit through the EXIT trap on an interrupt too.
trap 'exit 130' INT
trap 'exit 143' TERM

bin_dir=$("$root/hack/build-control-plane.sh" | tail -n 1)
export HAAGENT_CONTROL_PLANE_BIN="$bin_dir"
# prometheus, which scrapes the agents and evaluates the shipped alert rules
# in the alert tests (built once and cached like the control plane).
HAAGENT_PROMETHEUS_BIN=$("$root/hack/build-prometheus.sh" | tail -n 1)
export HAAGENT_PROMETHEUS_BIN

# A space-separated list, split here on purpose.
read -r -a packages <<<"${HAAGENT_E2E_PACKAGES:-./...}"

cd "$root/test"
# -count=1: these tests start processes and measure time; a cached pass says
# nothing about the binaries or the machine of today.
# Not exec: the EXIT trap must run after go test.
set -x
go test -count=1 -timeout "${HAAGENT_E2E_TIMEOUT:-60m}" "$@" "${packages[@]}"

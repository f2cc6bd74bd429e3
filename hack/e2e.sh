#!/usr/bin/env bash
# Runs the end-to-end tests against a real control plane.
#
#   hack/e2e.sh                         # every end-to-end test
#   hack/e2e.sh -run TestNodeFailure -v # extra arguments go to go test
#
# It builds (or finds in the cache) the control-plane binaries with
# hack/build-control-plane.sh, then runs go test in the test module with
# HAAGENT_CONTROL_PLANE_BIN pointing at them. The first build takes many
# minutes; later runs start testing at once.
#
# Environment:
#   HAAGENT_CACHE_DIR      where the binaries are cached (default ~/.cache/haagent)
#   HAAGENT_E2E_TIMEOUT    go test -timeout (default 30m)
#   HAAGENT_E2E_PACKAGES   packages to test (default ./...)
#   HAAGENT_E2E_KEEP=1     keep each control plane's run directory after its test
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bin_dir=$("$root/hack/build-control-plane.sh" | tail -n 1)
export HAAGENT_CONTROL_PLANE_BIN="$bin_dir"

# A space-separated list, split here on purpose.
read -r -a packages <<<"${HAAGENT_E2E_PACKAGES:-./...}"

cd "$root/test"
# -count=1: these tests start processes and measure time; a cached pass says
# nothing about the binaries or the machine of today.
set -x
exec go test -count=1 -timeout "${HAAGENT_E2E_TIMEOUT:-30m}" "$@" "${packages[@]}"

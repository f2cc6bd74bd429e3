#!/usr/bin/env bash
# Renders deploy/ from the Helm chart in charts/haagent, the one source of
# both.
#
#   hack/manifests.sh HELM            # rewrite the generated files of deploy/
#   hack/manifests.sh HELM --check    # fail, naming the file, when deploy/ differs
#
# HELM is the helm binary (the Makefile installs it: make manifests,
# make manifests-check). The chart is rendered with release name and
# namespace haagent and the values of charts/haagent/ci/deploy-values.yaml,
# for Kubernetes $KUBE_VERSION (below), and each object goes to the deploy/
# file named after its template below. deploy/README.md and the
# kustomization.yaml files are written by hand and left alone. The check also
# wants the chart's version and appVersion equal to the VERSION file.
#
# The generated parts of charts/haagent/README.md (the chart's versions and
# the table of values, from the comments of values.yaml) are written, or
# checked, too, by tools/cmd/chart-readme (needs go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart="$root/charts/haagent"
deploy="$root/deploy"

if [[ $# -lt 1 || $# -gt 2 || ( $# -eq 2 && $2 != --check ) ]]; then
	echo "usage: $0 HELM [--check]" >&2
	exit 2
fi
helm=$1
check=${2:-}

# Template of the chart -> file of deploy/.
declare -A files=(
	[crds/nodefailover.yaml]=crd-nodefailover.yaml
	[templates/namespace.yaml]=namespace.yaml
	[templates/rbac.yaml]=rbac.yaml
	[templates/configmap.yaml]=configmap.yaml
	[templates/daemonset.yaml]=daemonset.yaml
	[templates/keyring-secret.yaml]=keyring-secret.example.yaml
	[templates/monitoring/podmonitor.yaml]=monitoring/podmonitor.yaml
	[templates/monitoring/prometheusrule.yaml]=monitoring/prometheusrule.yaml
	# deploy/monitoring/kustomization.yaml builds this ConfigMap from
	# grafana-dashboard.json, which is copied below.
	[templates/monitoring/grafana-dashboard.yaml]=""
)

header="# Generated from charts/haagent by make manifests; do not edit."

# Extra lines at the top of some files, after the header.
declare -A preamble=(
	[keyring-secret.example.yaml]="# EXAMPLE ONLY: not listed in kustomization.yaml, and it holds no real key.
#
# Copy it outside the repository, put the key in place of the placeholder and
# apply it; or better, create the Secret with kubectl as shown below. Applied
# as it is, the placeholder is rejected: the agents stop at start with
#   gossip: --keyring-file /etc/haagent/keyring/keys line 1: not valid base64
#"
)

# The Kubernetes release the project is built and tested against. helm
# template needs one: a helm built with go install assumes v1.20, below the
# chart's kubeVersion.
KUBE_VERSION=v1.37.2

# Objects of deploy/ are applied with kubectl, not installed by Helm: their
# app.kubernetes.io/managed-by says so.
managed_by=kubectl

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

rendered="$out/rendered.yaml"
"$helm" template haagent "$chart" --namespace haagent --include-crds \
	--kube-version "$KUBE_VERSION" --values "$chart/ci/deploy-values.yaml" |
	sed -E "s|^( *app\.kubernetes\.io/managed-by: )Helm\$|\1$managed_by|" >"$rendered"

# Split the stream on helm's "---" + "# Source: haagent/<path>" lines into
# one file per source, in helm's order, documents separated by "---".
mkdir -p "$out/split"
awk -v dir="$out/split" '
	/^---$/ { sep = 1; next }
	sep && /^# Source: / {
		src = substr($0, length("# Source: haagent/") + 1)
		gsub("/", "%", src)
		f = dir "/" src
		if (f in seen) print "---" > f
		seen[f] = 1
		sep = 0
		next
	}
	{ sep = 0; print > f }
' "$rendered"

mkdir -p "$out/deploy/monitoring"
for part in "$out"/split/*; do
	src=${part##*/}
	src=${src//%//}
	if [[ ! -v files[$src] ]]; then
		echo "manifests: the chart template $src has no file in deploy/: name one in ${BASH_SOURCE[0]}" >&2
		exit 1
	fi
	dest=${files[$src]}
	[[ -n $dest ]] || continue
	{
		echo "$header"
		if [[ -v preamble[$dest] ]]; then
			echo "${preamble[$dest]}"
		fi
		# Helm leaves blank lines where a template's actions were; drop the
		# trailing ones.
		sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$part"
	} >"$out/deploy/$dest"
done
cp "$chart/files/grafana-dashboard.json" "$out/deploy/monitoring/grafana-dashboard.json"

generated=()
for dest in "${files[@]}" monitoring/grafana-dashboard.json; do
	[[ -n $dest ]] && generated+=("$dest")
done

if [[ $check != --check ]]; then
	for dest in "${generated[@]}"; do
		if [[ ! -f $out/deploy/$dest ]]; then
			echo "manifests: the chart rendered nothing for deploy/$dest" >&2
			exit 1
		fi
		cp "$out/deploy/$dest" "$deploy/$dest"
	done
	echo "manifests: wrote ${#generated[@]} files of deploy/ from charts/haagent"
	go run -C "$root/tools" ./cmd/chart-readme "$chart"
	exit 0
fi

status=0
version=$(tr -d '[:space:]' <"$root/VERSION")
for field in version appVersion; do
	got=$(sed -n -E "s/^$field: *\"?([^\"]*)\"?\$/\1/p" "$chart/Chart.yaml")
	if [[ $got != "$version" ]]; then
		echo "manifests: charts/haagent/Chart.yaml $field is $got, VERSION is $version: make them equal" >&2
		status=1
	fi
done
for dest in "${generated[@]}"; do
	if [[ ! -f $out/deploy/$dest ]]; then
		echo "manifests: the chart renders nothing for deploy/$dest" >&2
		status=1
	elif ! diff -u --label "deploy/$dest" --label "charts/haagent (rendered)" \
		"$deploy/$dest" "$out/deploy/$dest" >&2; then
		echo "manifests: deploy/$dest differs from what charts/haagent renders: change the chart, then run make manifests" >&2
		status=1
	fi
done
if ((status == 0)); then
	echo "manifests: deploy/ matches charts/haagent (${#generated[@]} files)"
fi
if ! go run -C "$root/tools" ./cmd/chart-readme -check "$chart" >/dev/null; then
	status=1
fi
exit $status

{{/*
The chart label, helm.sh/chart: name-version, as a label value.
*/}}
{{- define "haagent.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the DaemonSet's selector (immutable: they never change for
a release) and the PodMonitor's. app.kubernetes.io/name=haagent is also the
agents' peer discovery selector (--discovery-selector) and, through the
PodMonitor, the job label of every series: it is fixed, not a value.
*/}}
{{- define "haagent.selectorLabels" -}}
app.kubernetes.io/name: haagent
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object: Kubernetes' recommended labels, then commonLabels.
*/}}
{{- define "haagent.labels" -}}
helm.sh/chart: {{ include "haagent.chart" . }}
{{ include "haagent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: haagent
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the monitoring objects. */}}
{{- define "haagent.monitoringLabels" -}}
{{ include "haagent.labels" . }}
{{- with .Values.monitoring.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The agent image, tagged with the chart's appVersion unless image.tag is set. */}}
{{- define "haagent.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Settings of config.yaml that come from typed values, by flag name; empty and
null values are left out, so that the agent's own default applies.
*/}}
{{- define "haagent.settings" -}}
{{- $s := dict }}
{{- if .Values.dryRun }}{{ $_ := set $s "evict-dry-run" true }}{{ end }}
{{- if .Values.metrics.auth.enabled }}{{ $_ := set $s "http-auth" "kubernetes" }}{{ end }}
{{- with .Values.fence }}
{{- if .action }}{{ $_ := set $s "fence-action" .action }}{{ end }}
{{- if .after }}{{ $_ := set $s "fence-after" .after }}{{ end }}
{{- if .command }}{{ $_ := set $s "fence-command" .command }}{{ end }}
{{- if .watchdogDevice }}{{ $_ := set $s "watchdog-device" .watchdogDevice }}{{ end }}
{{- if .bound }}{{ $_ := set $s "fence-bound" .bound }}{{ end }}
{{- end }}
{{- with .Values.guards }}
{{- if not (kindIs "invalid" .maxDeadFraction) }}{{ $_ := set $s "max-dead-fraction" .maxDeadFraction }}{{ end }}
{{- if not (kindIs "invalid" .zoneMinNodes) }}{{ $_ := set $s "zone-min-nodes" .zoneMinNodes }}{{ end }}
{{- if not (kindIs "invalid" .failoverBurst) }}{{ $_ := set $s "failover-burst" .failoverBurst }}{{ end }}
{{- if .failoverInterval }}{{ $_ := set $s "failover-interval" .failoverInterval }}{{ end }}
{{- end }}
{{- if and (eq .Values.fence.action "command") (not .Values.fence.command) }}
{{- fail "fence.command is required with fence.action=command" }}
{{- end }}
{{- range $k, $v := .Values.config.extra }}
{{- if has $k (list "gossip-port" "http-addr") }}
{{- continue }}{{/* haagent.ports checks them and writes them */}}
{{- end }}
{{- if or (hasKey $s $k) (has $k (list "gossip-profile" "cluster-label" "log-level" "checks" "config" "http-auth")) }}
{{- fail (printf "config.extra.%s: set it with its own value of the chart, not in config.extra" $k) }}
{{- end }}
{{- $_ := set $s $k $v }}
{{- end }}
{{- if $s }}{{ toYaml $s }}{{ end }}
{{- end }}

{{/*
The ports' settings of config.yaml, from ports.gossip and ports.metrics,
which the container ports, the probes and the PodMonitor use too. A
config.extra that sets --gossip-port or --http-addr to another port would
move the agent away from them without a word: refused. The same port is
accepted, and an http-addr with a host of its own is kept (the probes reach
the agent at the node's address, so that host must be the node's). extraArgs
beat the config file and cannot be checked as reliably: refused outright.
*/}}
{{- define "haagent.ports" -}}
{{- $gossip := int .Values.ports.gossip }}
{{- $metrics := int .Values.ports.metrics }}
{{- if eq $gossip $metrics }}
{{- fail (printf "ports.gossip and ports.metrics are both %d: the gossip TCP listener and the HTTP server need a port each" $gossip) }}
{{- end }}
{{- $addr := printf ":%d" $metrics }}
{{- with .Values.config.extra }}
{{- if hasKey . "gossip-port" }}
{{- if ne (toString (index . "gossip-port")) (toString $gossip) }}
{{- fail (printf "config.extra.gossip-port is %v but ports.gossip is %d: set the gossip port with ports.gossip alone, which the container ports follow" (index . "gossip-port") $gossip) }}
{{- end }}
{{- end }}
{{- if hasKey . "http-addr" }}
{{- $extra := toString (index . "http-addr") }}
{{- if ne (splitList ":" $extra | last) (toString $metrics) }}
{{- fail (printf "config.extra.http-addr is %q but ports.metrics is %d: set the port with ports.metrics, which the probes and the PodMonitor follow" $extra $metrics) }}
{{- end }}
{{- $addr = $extra }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
{{- if regexMatch "^--?(gossip-port|http-addr)(=|$)" (toString .) }}
{{- fail (printf "extraArgs: %s: set the port with ports.gossip or ports.metrics instead, which the container ports, the probes and the PodMonitor follow" .) }}
{{- end }}
{{- end }}
gossip-port: {{ $gossip }}
http-addr: {{ $addr | quote }}
{{- end }}

{{/*
The Secret whose token the PodMonitor sends with metrics.auth.enabled: that
of metrics.auth.tokenSecret.name, else the reader's that the chart makes.
*/}}
{{- define "haagent.metricsTokenSecret" -}}
{{- with .Values.metrics.auth }}
{{- if .tokenSecret.name }}{{ .tokenSecret.name }}
{{- else if .createReader }}haagent-metrics-reader-token
{{- else }}{{ fail "metrics.auth.tokenSecret.name: name the Secret of the token the PodMonitor sends, or set metrics.auth.createReader" }}
{{- end }}
{{- end }}
{{- end }}

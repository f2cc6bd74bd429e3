{{/*
Labels of every object. app.kubernetes.io/name=haagent is also the agents'
peer discovery selector, the DaemonSet's selector and the PodMonitor's job
label: it is fixed, not a value.
*/}}
{{- define "haagent.labels" -}}
app.kubernetes.io/name: haagent
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
{{- if or (hasKey $s $k) (has $k (list "gossip-profile" "cluster-label" "log-level" "checks" "config")) }}
{{- fail (printf "config.extra.%s: set it with its own value of the chart, not in config.extra" $k) }}
{{- end }}
{{- $_ := set $s $k $v }}
{{- end }}
{{- if $s }}{{ toYaml $s }}{{ end }}
{{- end }}

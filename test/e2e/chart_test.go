package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/haagent/haagent/test/cluster"
)

// helmEnv names the helm binary; the Makefile installs it and sets this.
const helmEnv = "HAAGENT_HELM"

// monitoringCRDs stand in for the Prometheus operator's CRDs, which the
// test control plane does not have (and this repository does not ship).
// Their schemas hold only the fields the chart uses, with the operator's
// names and types, and no x-kubernetes-preserve-unknown-fields: kubectl's
// strict field validation then refuses a field the chart misspells. They do
// not check what the operator's full schemas would (value formats, enums).
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: podmonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PodMonitor, listKind: PodMonitorList, plural: podmonitors, singular: podmonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [selector]
              properties:
                jobLabel: {type: string}
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
                podMetricsEndpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                      authorization:
                        type: object
                        properties:
                          type: {type: string}
                          credentials:
                            type: object
                            required: [key]
                            properties:
                              name: {type: string}
                              key: {type: string}
                              optional: {type: boolean}
                      relabelings:
                        type: array
                        items:
                          type: object
                          properties:
                            sourceLabels: {type: array, items: {type: string}}
                            targetLabel: {type: string}
                            action: {type: string, enum: [replace, keep, drop, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase, keepequal, dropequal]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: prometheusrules.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: PrometheusRule, listKind: PrometheusRuleList, plural: prometheusrules, singular: prometheusrule}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                groups:
                  type: array
                  items:
                    type: object
                    required: [name, rules]
                    properties:
                      name: {type: string, minLength: 1}
                      rules:
                        type: array
                        items:
                          type: object
                          required: [expr]
                          properties:
                            alert: {type: string}
                            record: {type: string}
                            expr: {x-kubernetes-int-or-string: true}
                            for: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                            labels: {type: object, additionalProperties: {type: string}}
                            annotations: {type: object, additionalProperties: {type: string}}
`

// TestChart_apply renders charts/haagent with helm template, once with the
// default values and once with ci/all-values.yaml (every toggle on: keyring
// Secret, PodMonitor, PrometheusRule, dashboard, dry-run, fence and guard
// settings, custom resources, tolerations and node selection), and sends
// each object to a real API server, first as `kubectl apply
// --dry-run=server` does (validation, defaulting and admission, nothing
// stored), then for real. CustomResourceDefinitions (the chart's and
// stand-ins for the Prometheus operator's, see monitoringCRDs) and the
// namespace are created first, as the other objects need them. Then a user
// bound to the built-in ClusterRole view (impersonated) lists the
// NodeFailover records, which the chart's aggregated view role grants, and
// may not change them.
func TestChart_apply(t *testing.T) {
	helm := helmBinary(t)
	cp := startControlPlane(t, stock)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	kubeVersion := serverVersion(t, cp)
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, "charts", "haagent")
	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cp.Kubectl(ctx, []byte(monitoringCRDs), "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}

	for _, tc := range []struct {
		name      string
		namespace string
		values    string // file in the chart; "" for the defaults
		check     func(t *testing.T, objs map[string]*unstructured.Unstructured)
	}{{
		name:      "defaults",
		namespace: "haagent",
		check: func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			ds := mustObject(t, objs, "DaemonSet/haagent")
			pod := field(t, ds, "spec", "template", "spec")
			if got, want := jsonOf(pod["tolerations"]), `[{"operator":"Exists"}]`; got != want {
				t.Errorf("tolerations: %s, want %s", got, want)
			}
			if got, want := jsonOf(pod["containers"].([]any)[0].(map[string]any)["image"]), `"ghcr.io/haagent/haagent:`+strings.TrimSpace(string(version))+`"`; got != want {
				t.Errorf("image: %s, want %s", got, want)
			}
			config := configYAML(t, objs)
			for _, want := range []string{"gossip-profile: auto\n", "cluster-label: haagent\n", "name: container-runtime\n"} {
				if !strings.Contains(config, want) {
					t.Errorf("config.yaml has no %q:\n%s", want, config)
				}
			}
			for _, absent := range []string{"evict-dry-run", "fence-action", "max-dead-fraction"} {
				if strings.Contains(config, absent) {
					t.Errorf("config.yaml sets %s by default:\n%s", absent, config)
				}
			}
			for _, absent := range []string{"Namespace/haagent", "Secret/haagent-keyring", "PrometheusRule/haagent", "PodMonitor/haagent", "ConfigMap/haagent-grafana-dashboard",
				"ClusterRole/haagent-metrics-reader", "ServiceAccount/haagent-metrics-reader", "Secret/haagent-metrics-reader-token"} {
				if objs[absent] != nil {
					t.Errorf("the default values render %s", absent)
				}
			}
		},
	}, {
		name:      "allToggles",
		namespace: "ha-system",
		values:    "ci/all-values.yaml",
		check: func(t *testing.T, objs map[string]*unstructured.Unstructured) {
			for _, want := range []string{"Namespace/ha-system", "Secret/haagent-gossip-keys", "PrometheusRule/haagent", "PodMonitor/haagent", "ConfigMap/haagent-grafana-dashboard",
				"ClusterRole/haagent-metrics-reader", "ClusterRoleBinding/haagent-metrics-reader", "ServiceAccount/haagent-metrics-reader", "Secret/haagent-metrics-reader-token"} {
				mustObject(t, objs, want)
			}
			pm := mustObject(t, objs, "PodMonitor/haagent")
			if got, want := jsonOf(field(t, pm, "spec")["podMetricsEndpoints"].([]any)[0].(map[string]any)["authorization"]),
				`{"credentials":{"key":"token","name":"haagent-metrics-reader-token"},"type":"Bearer"}`; got != want {
				t.Errorf("PodMonitor authorization: %s, want %s", got, want)
			}
			if rules := jsonOf(mustObject(t, objs, "ClusterRole/haagent").Object["rules"]); !strings.Contains(rules, `"resources":["tokenreviews"]`) ||
				!strings.Contains(rules, `"resources":["subjectaccessreviews"]`) {
				t.Errorf("ClusterRole haagent cannot review callers with metrics.auth.enabled: %s", rules)
			}
			ds := mustObject(t, objs, "DaemonSet/haagent")
			pod := field(t, ds, "spec", "template", "spec")
			container := pod["containers"].([]any)[0].(map[string]any)
			for _, c := range []struct{ what, got, want string }{
				{"image", jsonOf(container["image"]), `"registry.example.com/haagent:0.1.0-test"`},
				{"resources", jsonOf(container["resources"]), `{"limits":{"cpu":"1","memory":"128Mi"},"requests":{"cpu":"50m","memory":"64Mi"}}`},
				{"nodeSelector", jsonOf(pod["nodeSelector"]), `{"kubernetes.io/os":"linux"}`},
				{"tolerations", jsonOf(pod["tolerations"]), `[{"effect":"NoSchedule","key":"node-role.kubernetes.io/control-plane","operator":"Exists"}]`},
				{"priorityClassName", jsonOf(pod["priorityClassName"]), `"system-cluster-critical"`},
				{"supplementalGroups", jsonOf(pod["securityContext"].(map[string]any)["supplementalGroups"]), `[0]`},
				{"ports", jsonOf(container["ports"]), `[{"containerPort":7947,"name":"gossip-tcp","protocol":"TCP"},{"containerPort":7947,"name":"gossip-udp","protocol":"UDP"},{"containerPort":9751,"name":"http","protocol":"TCP"}]`},
			} {
				if c.got != c.want {
					t.Errorf("DaemonSet %s: %s, want %s", c.what, c.got, c.want)
				}
			}
			if vols := jsonOf(pod["volumes"]); !strings.Contains(vols, `"path":"/run/crio"`) || !strings.Contains(vols, `"name":"haagent-gossip-keys"`) {
				t.Errorf("DaemonSet volumes have no /run/crio hostPath or keyring haagent-gossip-keys: %s", vols)
			}
			if args := jsonOf(container["args"]); !strings.Contains(args, `"--zone=eu-1a"`) {
				t.Errorf("DaemonSet args have no --zone=eu-1a: %s", args)
			}
			config := configYAML(t, objs)
			for _, want := range []string{
				"gossip-profile: fast\n", "cluster-label: prod-eu-1\n", "log-level: debug\n",
				"evict-dry-run: true\n", "fence-action: command\n", "fence-command: /usr/local/bin/fence-self --now\n",
				"fence-after: 15s\n", "fence-bound: 1m\n", "max-dead-fraction: 0.34\n", "zone-min-nodes: 5\n",
				"failover-burst: 1\n", "failover-interval: 1m\n", "not-ready-failover-after: 2m\n",
				"path: /run/crio/crio.sock\n", "gossip-port: 7947\n", "http-addr: \":9751\"\n", "http-auth: kubernetes\n",
			} {
				if !strings.Contains(config, want) {
					t.Errorf("config.yaml has no %q:\n%s", want, config)
				}
			}
			role := mustObject(t, objs, "Role/haagent")
			if rules := jsonOf(role.Object["rules"]); !strings.Contains(rules, `"resourceNames":["haagent-leader"]`) {
				t.Errorf("Role rules do not name the Lease haagent-leader of config.extra: %s", rules)
			}
			for _, name := range []string{"PrometheusRule/haagent", "PodMonitor/haagent", "ConfigMap/haagent-grafana-dashboard"} {
				if got := mustObject(t, objs, name).GetLabels()["release"]; got != "kube-prometheus-stack" {
					t.Errorf("%s label release: %q, want kube-prometheus-stack", name, got)
				}
			}
			rule := mustObject(t, objs, "PrometheusRule/haagent")
			if groups := jsonOf(rule.Object["spec"]); !strings.Contains(groups, `{{ $labels.member }}`) {
				t.Errorf("PrometheusRule lost its Prometheus templating to Helm: %s", groups)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "haagent", chart, "--namespace", tc.namespace, "--include-crds", "--kube-version", kubeVersion}
			if tc.values != "" {
				args = append(args, "--values", filepath.Join(chart, tc.values))
			}
			rendered, err := runHelm(ctx, helm, args...)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := splitDocuments(rendered)
			if err != nil {
				t.Fatal(err)
			}

			// For real: the CRDs and the namespace.
			var crds, namespaces, rest [][]byte
			var sent []string
			for _, d := range docs {
				switch kindName(t, d)[0] {
				case "CustomResourceDefinition":
					crds = append(crds, d)
				case "Namespace":
					namespaces = append(namespaces, d)
					sent = append(sent, strings.Join(kindName(t, d), "/"))
				default:
					rest = append(rest, d)
					sent = append(sent, strings.Join(kindName(t, d), "/"))
				}
			}
			if len(crds) != 1 {
				t.Fatalf("helm template --include-crds rendered %d CRDs, want 1 (NodeFailover)", len(crds))
			}
			if out, err := cp.Kubectl(ctx, bytes.Join(crds, []byte("\n---\n")), "apply", "-f", "-"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if out, err := cp.Kubectl(ctx, nil, "wait", "--for=condition=Established", "--timeout=60s",
				"crd/nodefailovers.haagent.io", "crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(namespaces) > 0 {
				// Dry-run the chart's Namespace before it exists, then create
				// it: the namespaced objects need it.
				if out, err := cp.Kubectl(ctx, bytes.Join(namespaces, []byte("\n---\n")), "apply", "--dry-run=server", "-f", "-"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				if out, err := cp.Kubectl(ctx, bytes.Join(namespaces, []byte("\n---\n")), "apply", "-f", "-"); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			} else if out, err := cp.Kubectl(ctx, nil, "create", "namespace", tc.namespace); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}

			out, err := cp.Kubectl(ctx, bytes.Join(rest, []byte("\n---\n")), "apply", "--dry-run=server", "-o", "json", "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			objs, err := dryRunObjects(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(namespaces) > 0 {
				ns, err := cp.Client().CoreV1().Namespaces().Get(ctx, tc.namespace, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
					t.Errorf("namespace %s: Pod Security enforce level %q, want privileged", tc.namespace, got)
				}
				objs["Namespace/"+tc.namespace] = &unstructured.Unstructured{Object: map[string]any{"kind": "Namespace"}}
			}
			t.Logf("helm template --namespace %s (values: %s) | kubectl apply --dry-run=server: %d objects accepted: %s", tc.namespace, valuesName(tc.values), len(sent), strings.Join(sent, ", "))
			for _, name := range sent {
				if objs[name] == nil {
					t.Errorf("%s was sent but the API server's dry-run answer does not have it", name)
				}
			}
			tc.check(t, objs)
			checkStandardLabels(t, objs, sent)

			// A dry run stores nothing.
			if _, err := cp.Client().AppsV1().DaemonSets(tc.namespace).Get(ctx, "haagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("DaemonSet after a dry run: %v, want NotFound", err)
			}

			// For real, everything. The control plane has no nodes, so the
			// DaemonSet makes no pods.
			if out, err := cp.Kubectl(ctx, bytes.Join(rest, []byte("\n---\n")), "apply", "-f", "-"); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			out, err = cp.Kubectl(ctx, bytes.Join(rest, []byte("\n---\n")), "get", "-o", "json", "-f", "-")
			if err != nil {
				t.Fatal(err)
			}
			stored, err := dryRunObjects(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, name := range sent {
				if stored[name] == nil && !strings.HasPrefix(name, "Namespace/") {
					t.Errorf("%s was applied but is not stored", name)
				}
			}
			ds := mustObject(t, stored, "DaemonSet/haagent")
			sum, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			if len(sum) != 64 {
				t.Errorf("stored DaemonSet: pod template annotation checksum/config %q, want a sha256", sum)
			}
			sel, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "selector", "matchLabels")
			if got, want := jsonOf(sel), `{"app.kubernetes.io/instance":"haagent","app.kubernetes.io/name":"haagent"}`; got != want {
				t.Errorf("stored DaemonSet selector %s, want %s", got, want)
			}
			t.Logf("kubectl apply: %d objects stored", len(sent))
		})
	}

	// A user bound to the built-in ClusterRole view may list the records,
	// through the chart's haagent-nodefailovers-view (aggregated into view
	// by the controller manager), and may not write them; one bound to edit
	// may delete them (haagent-nodefailovers-edit), and not create them.
	t.Run("viewAndEditRoles", func(t *testing.T) {
		record := `{"apiVersion":"haagent.io/v1alpha1","kind":"NodeFailover","metadata":{"name":"e2e-node-1"},"spec":{"node":"node-1","reason":"chart e2e"}}`
		if out, err := cp.Kubectl(ctx, []byte(record), "apply", "-f", "-"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		viewer := []string{"--as=jane", "--as-group=haagent-e2e-viewers"}
		editor := []string{"--as=joe", "--as-group=haagent-e2e-editors"}
		if out, err := cp.Kubectl(ctx, nil, append([]string{"get", "nodefailovers"}, viewer...)...); err == nil {
			t.Errorf("kubectl get nodefailovers before any binding: allowed, want Forbidden:\n%s", out)
		}
		for _, b := range []struct{ name, role, group string }{
			{"haagent-e2e-viewers", "view", "haagent-e2e-viewers"},
			{"haagent-e2e-editors", "edit", "haagent-e2e-editors"},
		} {
			if out, err := cp.Kubectl(ctx, nil, "create", "clusterrolebinding", b.name, "--clusterrole="+b.role, "--group="+b.group); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		}
		// Aggregation is asynchronous: wait until view and edit have the
		// chart's rules.
		var out []byte
		var err error
		deadline := time.Now().Add(time.Minute)
		for {
			out, err = cp.Kubectl(ctx, nil, append([]string{"get", "nodefailovers", "-o", "name"}, viewer...)...)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("kubectl get nodefailovers as a user bound to view: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != "nodefailover.haagent.io/e2e-node-1" {
			t.Errorf("kubectl get nodefailovers as a viewer: %q, want nodefailover.haagent.io/e2e-node-1", got)
		}
		t.Logf("kubectl get nodefailovers %s: %s", strings.Join(viewer, " "), bytes.TrimSpace(out))
		if out, err := cp.Kubectl(ctx, nil, append([]string{"get", "nodefailovers", "-o", "wide"}, viewer...)...); err != nil {
			t.Errorf("kubectl get nodefailovers -o wide as a viewer: %v\n%s", err, out)
		}
		for _, c := range []struct {
			who               []string
			verb, subresource string
			want              string
		}{
			{viewer, "watch", "", "yes"},
			{viewer, "delete", "", "no"},
			{viewer, "update", "", "no"},
			{viewer, "create", "", "no"},
			{editor, "list", "", "yes"},
			{editor, "delete", "", "yes"},
			{editor, "create", "", "no"},
			{editor, "patch", "", "no"},
			{editor, "update", "status", "no"},
		} {
			args := append([]string{"auth", "can-i", c.verb, "nodefailovers.haagent.io", "--subresource=" + c.subresource}, c.who...)
			deadline := time.Now().Add(time.Minute)
			var got string
			for {
				// can-i exits 1 for "no": the answer is the output's last
				// word (a warning may come before it).
				out, _ := cp.Kubectl(ctx, nil, args...)
				got = lastWord(out)
				if got == c.want || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Second)
			}
			if got != c.want {
				t.Errorf("kubectl %s: %q, want %q", strings.Join(args, " "), got, c.want)
			}
		}
		if out, err := cp.Kubectl(ctx, nil, append([]string{"delete", "nodefailover", "e2e-node-1"}, viewer...)...); err == nil {
			t.Errorf("kubectl delete nodefailover as a viewer: allowed, want Forbidden:\n%s", out)
		}
		if out, err := cp.Kubectl(ctx, nil, append([]string{"delete", "nodefailover", "e2e-node-1"}, editor...)...); err != nil {
			t.Errorf("kubectl delete nodefailover as an editor: %v\n%s", err, out)
		}
	})
}

// TestChart_values renders the chart with helm template alone (no API
// server) and checks what the values do to it: the ports reach the config,
// the container ports and the probes, and a config.extra or extraArgs that
// would move the agent away from them is refused; checksum/config changes
// with the configuration and only with it.
func TestChart_values(t *testing.T) {
	helm := helmBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, err := cluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(root, "charts", "haagent")
	render := func(t *testing.T, set ...string) (map[string]*unstructured.Unstructured, error) {
		t.Helper()
		args := []string{"template", "haagent", chart, "--namespace", "haagent", "--kube-version", "v1.37.2"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := runHelm(ctx, helm, args...)
		if err != nil {
			return nil, err
		}
		docs, err := splitDocuments(out)
		if err != nil {
			t.Fatal(err)
		}
		objs := map[string]*unstructured.Unstructured{}
		for _, d := range docs {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(d, &u.Object); err != nil {
				t.Fatal(err)
			}
			objs[u.GetKind()+"/"+u.GetName()] = u
		}
		return objs, nil
	}
	checksum := func(t *testing.T, objs map[string]*unstructured.Unstructured) string {
		t.Helper()
		s, _, _ := unstructured.NestedString(mustObject(t, objs, "DaemonSet/haagent").Object, "spec", "template", "metadata", "annotations", "checksum/config")
		return s
	}

	t.Run("gossip profile", func(t *testing.T) {
		// auto is the default (see TestChart_apply); every profile the
		// agent knows is accepted, and the schema refuses any other.
		for _, p := range []string{"auto", "default", "fast"} {
			objs, err := render(t, "config.gossipProfile="+p)
			if err != nil {
				t.Fatalf("gossipProfile %s: %v", p, err)
			}
			if config := configYAML(t, objs); !strings.Contains(config, "gossip-profile: "+p+"\n") {
				t.Errorf("gossipProfile %s: config.yaml has no gossip-profile: %s:\n%s", p, p, config)
			}
		}
		if _, err := render(t, "config.gossipProfile=turbo"); err == nil {
			t.Errorf("gossipProfile turbo was accepted")
		}
	})

	t.Run("ports", func(t *testing.T) {
		objs, err := render(t, "ports.gossip=7947", "ports.metrics=9751")
		if err != nil {
			t.Fatal(err)
		}
		config := configYAML(t, objs)
		for _, want := range []string{"gossip-port: 7947\n", "http-addr: \":9751\"\n"} {
			if !strings.Contains(config, want) {
				t.Errorf("config.yaml has no %q:\n%s", want, config)
			}
		}
		container := field(t, mustObject(t, objs, "DaemonSet/haagent"), "spec", "template", "spec")["containers"].([]any)[0].(map[string]any)
		if got, want := jsonOf(container["ports"]), `[{"containerPort":7947,"name":"gossip-tcp","protocol":"TCP"},{"containerPort":7947,"name":"gossip-udp","protocol":"UDP"},{"containerPort":9751,"name":"http","protocol":"TCP"}]`; got != want {
			t.Errorf("container ports %s, want %s", got, want)
		}
		for _, probe := range []string{"livenessProbe", "readinessProbe"} {
			if got := jsonOf(container[probe].(map[string]any)["httpGet"].(map[string]any)["port"]); got != `"http"` {
				t.Errorf("%s port %s, want the named port http (ports.metrics)", probe, got)
			}
		}
		// The same ports in config.extra are accepted.
		if _, err := render(t, "config.extra.gossip-port=7946", "config.extra.http-addr=:9750"); err != nil {
			t.Errorf("config.extra with the ports of the values: %v", err)
		}
		for _, set := range [][]string{
			{"config.extra.gossip-port=7947"},
			{"config.extra.http-addr=127.0.0.1:9751"},
			{"extraArgs={--gossip-port=7946}"},
			{"extraArgs={--http-addr,:9750}"},
			{"ports.gossip=9750"},
		} {
			_, err := render(t, set...)
			if err == nil {
				t.Errorf("--set %s: rendered, want refused", strings.Join(set, " "))
				continue
			}
			if !strings.Contains(err.Error(), "ports.") {
				t.Errorf("--set %s: refused without naming the ports values: %v", strings.Join(set, " "), err)
			}
		}
	})

	t.Run("checksumFollowsTheConfig", func(t *testing.T) {
		base, err := render(t)
		if err != nil {
			t.Fatal(err)
		}
		other, err := render(t, "config.logLevel=debug")
		if err != nil {
			t.Fatal(err)
		}
		same, err := render(t, "resources.requests.cpu=30m")
		if err != nil {
			t.Fatal(err)
		}
		if checksum(t, base) == "" || checksum(t, base) == checksum(t, other) {
			t.Errorf("checksum/config %q did not change with config.logLevel (%q)", checksum(t, base), checksum(t, other))
		}
		if checksum(t, base) != checksum(t, same) {
			t.Errorf("checksum/config changed with resources, which are not the config: %q, %q", checksum(t, base), checksum(t, same))
		}
	})
}

// serverVersion is the API server's version, for helm template
// --kube-version (a helm built with go install assumes v1.20, below the
// chart's kubeVersion).
func serverVersion(t *testing.T, cp *cluster.ControlPlane) string {
	t.Helper()
	v, err := cp.Client().Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	return v.GitVersion
}

// checkStandardLabels checks Kubernetes' recommended labels on every object
// the chart sent.
func checkStandardLabels(t *testing.T, objs map[string]*unstructured.Unstructured, sent []string) {
	t.Helper()
	for _, name := range sent {
		o := objs[name]
		if o == nil || o.GetLabels() == nil && strings.HasPrefix(name, "Namespace/") {
			continue
		}
		labels := o.GetLabels()
		for _, key := range []string{"helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of"} {
			if labels[key] == "" {
				t.Errorf("%s has no label %s: %v", name, key, labels)
			}
		}
		if labels["app.kubernetes.io/instance"] != "haagent" || labels["app.kubernetes.io/managed-by"] != "Helm" {
			t.Errorf("%s: instance %q, managed-by %q; want haagent, Helm", name, labels["app.kubernetes.io/instance"], labels["app.kubernetes.io/managed-by"])
		}
	}
}

func lastWord(b []byte) string {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// helmBinary is $HAAGENT_HELM. Without it the test is skipped, except under
// CI, where that would hide the chart from the tests.
func helmBinary(t *testing.T) string {
	t.Helper()
	helm := os.Getenv(helmEnv)
	if helm == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: make e2e installs helm and sets it", helmEnv)
		}
		t.Skipf("%s is not set: run make e2e, which installs helm and sets it, or point it at a helm binary", helmEnv)
	}
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("%s: %v", helmEnv, err)
	}
	return helm
}

func valuesName(file string) string {
	if file == "" {
		return "defaults"
	}
	return file
}

func runHelm(ctx context.Context, helm string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, errors.New("helm " + strings.Join(args, " ") + ": " + err.Error() + "\n" + stderr.String())
	}
	return out, nil
}

// splitDocuments splits a YAML stream into its documents, skipping empty
// ones (comments only).
func splitDocuments(stream []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if len(probe) > 0 {
			docs = append(docs, doc)
		}
	}
}

// kindName is the kind and name of a YAML document.
func kindName(t *testing.T, doc []byte) []string {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(doc, &u.Object); err != nil {
		t.Fatal(err)
	}
	return []string{u.GetKind(), u.GetName()}
}

// dryRunObjects indexes kubectl's -o json answer (one object or a List) by
// kind/name.
func dryRunObjects(out []byte) (map[string]*unstructured.Unstructured, error) {
	var u unstructured.Unstructured
	if err := json.Unmarshal(out, &u.Object); err != nil {
		return nil, err
	}
	objs := map[string]*unstructured.Unstructured{}
	if !u.IsList() {
		objs[u.GetKind()+"/"+u.GetName()] = &u
		return objs, nil
	}
	list, err := u.ToList()
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		o := &list.Items[i]
		objs[o.GetKind()+"/"+o.GetName()] = o
	}
	return objs, nil
}

func mustObject(t *testing.T, objs map[string]*unstructured.Unstructured, name string) *unstructured.Unstructured {
	t.Helper()
	o := objs[name]
	if o == nil {
		t.Fatalf("no %s in the rendered chart", name)
	}
	return o
}

func field(t *testing.T, o *unstructured.Unstructured, path ...string) map[string]any {
	t.Helper()
	m, ok, err := unstructured.NestedMap(o.Object, path...)
	if err != nil || !ok {
		t.Fatalf("%s/%s: no %s (%v)", o.GetKind(), o.GetName(), strings.Join(path, "."), err)
	}
	return m
}

// configYAML is config.yaml of the ConfigMap haagent-config.
func configYAML(t *testing.T, objs map[string]*unstructured.Unstructured) string {
	t.Helper()
	s, _, _ := unstructured.NestedString(mustObject(t, objs, "ConfigMap/haagent-config").Object, "data", "config.yaml")
	return s
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

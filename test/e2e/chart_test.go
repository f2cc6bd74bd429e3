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

// TestChart_serverDryRun renders charts/haagent with helm template, once
// with the default values and once with ci/all-values.yaml (every toggle on:
// keyring Secret, PodMonitor, PrometheusRule, dashboard, dry-run, fence and
// guard settings, custom resources, tolerations and node selection), and
// sends each object to a real API server as `kubectl apply
// --dry-run=server` does: validation, defaulting and admission, nothing
// stored. CustomResourceDefinitions (the chart's and stand-ins for the
// Prometheus operator's, see monitoringCRDs) and the namespace are created
// for real first, as the dry-run objects need them.
func TestChart_serverDryRun(t *testing.T) {
	helm := helmBinary(t)
	cp := startControlPlane(t, stock)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
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
			for _, want := range []string{"gossip-profile: default\n", "cluster-label: haagent\n", "name: container-runtime\n"} {
				if !strings.Contains(config, want) {
					t.Errorf("config.yaml has no %q:\n%s", want, config)
				}
			}
			for _, absent := range []string{"evict-dry-run", "fence-action", "max-dead-fraction"} {
				if strings.Contains(config, absent) {
					t.Errorf("config.yaml sets %s by default:\n%s", absent, config)
				}
			}
			for _, absent := range []string{"Namespace/haagent", "Secret/haagent-keyring", "PrometheusRule/haagent", "PodMonitor/haagent", "ConfigMap/haagent-grafana-dashboard"} {
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
			for _, want := range []string{"Namespace/ha-system", "Secret/haagent-gossip-keys", "PrometheusRule/haagent", "PodMonitor/haagent", "ConfigMap/haagent-grafana-dashboard"} {
				mustObject(t, objs, want)
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
				"path: /run/crio/crio.sock\n",
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
			if groups := jsonOf(rule.Object["spec"]); !strings.Contains(groups, `{{ $labels.instance }}`) {
				t.Errorf("PrometheusRule lost its Prometheus templating to Helm: %s", groups)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "haagent", chart, "--namespace", tc.namespace, "--include-crds"}
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

			// A dry run stores nothing.
			if _, err := cp.Client().AppsV1().DaemonSets(tc.namespace).Get(ctx, "haagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("DaemonSet after a dry run: %v, want NotFound", err)
			}
		})
	}
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

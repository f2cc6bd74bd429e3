package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestDeploy_serverDryRun sends deploy/ to a real apiserver with
// --dry-run=server: every object passes validation, defaulting and
// admission (Pod Security included) without being stored. deploy/monitoring/
// needs the Prometheus operator's CRDs and is left out.
func TestDeploy_serverDryRun(t *testing.T) {
	cp := startControlPlane(t, stock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := deployDir(t)

	// A dry-run create of a namespace stores nothing, so the namespaced
	// objects after it would be refused for want of it: create it for real.
	if out, err := cp.Kubectl(ctx, nil, "apply", "-f", filepath.Join(dir, "namespace.yaml")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err := cp.Kubectl(ctx, nil, "apply", "--dry-run=server", "-k", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl apply --dry-run=server -k deploy/:\n%s", out)
	for _, want := range []string{
		"serviceaccount/haagent",
		"clusterrole.rbac.authorization.k8s.io/haagent",
		"clusterrolebinding.rbac.authorization.k8s.io/haagent",
		"role.rbac.authorization.k8s.io/haagent",
		"rolebinding.rbac.authorization.k8s.io/haagent",
		"configmap/haagent-config",
		"daemonset.apps/haagent",
	} {
		if !strings.Contains(string(out), want+" created (server dry run)") {
			t.Errorf("kubectl output has no %q created (server dry run)", want)
		}
	}
	if _, err := cp.Client().AppsV1().DaemonSets("haagent").Get(ctx, "haagent", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("DaemonSet after a dry run: %v, want NotFound", err)
	}
}

// TestDeploy_leastPrivilege installs deploy/ and asks the API, as the
// haagent ServiceAccount, what it may do: everything a failover needs, and
// nothing it does not (secrets, other namespaces' leases, deleting nodes,
// creating pods, changing RBAC).
func TestDeploy_leastPrivilege(t *testing.T) {
	cp := startControlPlane(t, stock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cp.ApplyDeploy(ctx, deployDir(t)); err != nil {
		t.Fatal(err)
	}
	token, err := cp.ServiceAccountToken(ctx, "haagent", "haagent", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cp.TokenRESTConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	type access struct {
		verb, group, resource, subresource, namespace, name string
	}
	allowed := []access{
		{"get", "", "nodes", "", "", ""},
		{"list", "", "nodes", "", "", ""},
		{"watch", "", "nodes", "", "", ""},
		{"patch", "", "nodes", "", "", ""},
		{"patch", "", "nodes", "status", "", ""},
		{"list", "", "pods", "", "", ""},
		{"delete", "", "pods", "", "default", ""},
		{"patch", "", "pods", "status", "default", ""},
		{"create", "", "pods", "eviction", "default", ""},
		{"create", "", "events", "", "default", ""},
		{"get", "apps", "replicasets", "", "default", ""},
		{"get", "apps", "statefulsets", "", "default", ""},
		{"create", "haagent.io", "nodefailovers", "", "", ""},
		{"update", "haagent.io", "nodefailovers", "status", "", ""},
		{"create", "coordination.k8s.io", "leases", "", "haagent", ""},
		{"update", "coordination.k8s.io", "leases", "", "haagent", "haagent-coordinator"},
		{"delete", "coordination.k8s.io", "leases", "", "haagent", "haagent-coordinator"},
		{"get", "coordination.k8s.io", "leases", "", "kube-node-lease", "node-1"},
		{"watch", "", "configmaps", "", "haagent", "haagent-roster"},
		{"update", "", "configmaps", "", "haagent", "haagent-roster"},
		{"create", "", "configmaps", "", "haagent", ""},
	}
	denied := []access{
		{"get", "", "secrets", "", "haagent", ""},
		{"list", "", "secrets", "", "", ""},
		{"delete", "", "nodes", "", "", ""},
		{"create", "", "nodes", "", "", ""},
		{"create", "", "pods", "", "default", ""},
		{"update", "", "pods", "", "default", ""},
		{"update", "coordination.k8s.io", "leases", "", "kube-node-lease", "node-1"},
		{"update", "coordination.k8s.io", "leases", "", "haagent", "another-lease"},
		{"delete", "coordination.k8s.io", "leases", "", "haagent", "another-lease"},
		{"create", "coordination.k8s.io", "leases", "", "default", ""},
		{"delete", "apps", "deployments", "", "default", ""},
		{"update", "apps", "statefulsets", "", "default", ""},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""},
		{"delete", "haagent.io", "nodefailovers", "", "", ""},
		{"update", "", "configmaps", "", "haagent", "haagent-config"},
		// The API server enforces PodDisruptionBudgets on each eviction;
		// haagent never reads them.
		{"list", "policy", "poddisruptionbudgets", "", "default", ""},
		// The roster is the only ConfigMap the agents write.
		{"update", "", "configmaps", "", "haagent", "another-configmap"},
	}
	check := func(a access) bool {
		t.Helper()
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: a.name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("access review %+v: %v", a, err)
		}
		return r.Status.Allowed
	}
	for _, a := range allowed {
		if !check(a) {
			t.Errorf("haagent may not %s %s/%s %s in %q: failover needs it", a.verb, a.group, a.resource, a.subresource, a.namespace)
		}
	}
	for _, a := range denied {
		if check(a) {
			t.Errorf("haagent may %s %s/%s %s in %q (%s): it must not", a.verb, a.group, a.resource, a.subresource, a.namespace, a.name)
		}
	}
	// And for real: reading a secret is refused.
	if _, err := sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("listing secrets as haagent: %v, want Forbidden", err)
	}
}

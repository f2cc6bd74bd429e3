package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

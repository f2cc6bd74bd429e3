package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestControlPlane_startAndStop(t *testing.T) {
	cp := startControlPlane(t, stock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("version is stamped", func(t *testing.T) {
		v, err := cp.Client().Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != "v1.37.2" {
			t.Errorf("server version %q, want v1.37.2", v.GitVersion)
		}
	})

	t.Run("kubectl with the admin kubeconfig", func(t *testing.T) {
		kubectl := filepath.Join(os.Getenv(binDirEnv), "kubectl")
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", cp.AdminKubeconfig(),
			"get", "serviceaccount", "default", "-o", "name").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "serviceaccount/default" {
			t.Errorf("kubectl printed %q, want serviceaccount/default", got)
		}
	})

	t.Run("service account token gets only what RBAC grants", func(t *testing.T) {
		const ns, name = "kube-system", "node-reader"
		client := cp.Client()
		mustCreate(t, func() error {
			_, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Name: name},
			}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			_, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}}},
			}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
			}, metav1.CreateOptions{})
			return err
		})

		path, err := cp.ServiceAccountKubeconfig(ctx, ns, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list nodes with the token: %v", err)
		}
		_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("list secrets with the token: %v, want Forbidden", err)
		}

		if _, err := cp.ServiceAccountToken(ctx, ns, name, time.Minute); err == nil {
			t.Error("a 1m token: want an error, the apiserver's minimum is 10m")
		}
	})

	t.Run("stop removes every process and the run directory", func(t *testing.T) {
		dir := cp.Dir()
		stopAndCheck(t, cp)
		if _, err := os.Stat(dir); !os.IsNotExist(err) && os.Getenv("HAAGENT_E2E_KEEP") != "1" {
			t.Errorf("run directory %s still there after Stop (stat: %v)", dir, err)
		}
	})
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

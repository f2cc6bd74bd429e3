package discovery

import (
	"context"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestParseSeeds(t *testing.T) {
	got, err := ParseSeeds([]string{"10.0.0.1:7000", "10.0.0.2", "", "[::1]:7946"}, 7946)
	if err != nil {
		t.Fatal(err)
	}
	want := Static{"10.0.0.1:7000", "10.0.0.2:7946", "[::1]:7946"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseSeeds = %v, want %v", got, want)
	}
	for _, bad := range []string{"10.0.0.1:0", "10.0.0.1:99999", ":7946", "h:x"} {
		_, err := ParseSeeds([]string{bad}, 7946)
		want := `discovery: --join "` + bad + `" must be host:port with a port between 1 and 65535`
		if err == nil || err.Error() != want {
			t.Errorf("ParseSeeds(%q) error = %v, want %q", bad, err, want)
		}
	}
}

func pod(name, ip string, phase corev1.PodPhase, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "haagent", Labels: labels},
		Status:     corev1.PodStatus{PodIP: ip, Phase: phase},
	}
}

func TestKubernetes_peers(t *testing.T) {
	agent := map[string]string{"app.kubernetes.io/name": "haagent"}
	deleting := pod("d", "10.0.0.9", corev1.PodRunning, agent)
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	client := fake.NewClientset(
		pod("a", "10.0.0.2", corev1.PodRunning, agent),
		pod("b", "10.0.0.1", corev1.PodRunning, agent),
		pod("c", "", corev1.PodPending, agent),
		pod("other", "10.0.0.5", corev1.PodRunning, map[string]string{"app": "web"}),
		deleting,
	)
	k, err := NewKubernetes(client, "haagent", "app.kubernetes.io/name=haagent", 7946)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:7946", "10.0.0.2:7946"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Peers = %v, want %v", got, want)
	}
}

func TestNewKubernetes_errors(t *testing.T) {
	c := fake.NewClientset()
	cases := []struct{ ns, sel, want string }{
		{"", "a=b", "discovery: --namespace is required for Kubernetes discovery (or set POD_NAMESPACE)"},
		{"x", "", "discovery: --discovery-selector must not be empty: it would select every pod of namespace x"},
	}
	for _, tc := range cases {
		if _, err := NewKubernetes(c, tc.ns, tc.sel, 1); err == nil || err.Error() != tc.want {
			t.Errorf("NewKubernetes(%q, %q) = %v, want %q", tc.ns, tc.sel, err, tc.want)
		}
	}
	if _, err := NewKubernetes(c, "x", "a in (", 1); err == nil {
		t.Errorf("a malformed selector was accepted")
	}
}

func TestUnion_apiDownKeepsStaticSeeds(t *testing.T) {
	client := fake.NewClientset()
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	k, _ := NewKubernetes(client, "haagent", "app=haagent", 7946)
	u := Union{Static{"10.0.0.3:7946"}, k}
	got, err := u.Peers(context.Background())
	if err != nil || !reflect.DeepEqual(got, []string{"10.0.0.3:7946"}) {
		t.Fatalf("Peers = %v, %v", got, err)
	}
	if _, err := (Union{k}).Peers(context.Background()); err == nil {
		t.Fatalf("a union whose only source fails reported no error")
	}
}

func TestFallback_listsPodsOnlyWithoutRoster(t *testing.T) {
	var asked int
	second := peersFunc(func() ([]string, error) { asked++; return []string{"10.0.0.9:7946"}, nil })
	var roster []string
	f := Fallback{Primary: func() []string { return roster }, Secondary: second}
	got, err := f.Peers(context.Background())
	if err != nil || len(got) != 1 || got[0] != "10.0.0.9:7946" || asked != 1 {
		t.Fatalf("without a roster: %v, %v, asked %d", got, err, asked)
	}
	roster = []string{"10.0.0.2:7946", "10.0.0.1:7946"}
	got, err = f.Peers(context.Background())
	if err != nil || len(got) != 2 || got[0] != "10.0.0.1:7946" || asked != 1 {
		t.Fatalf("with a roster: %v, %v, asked %d (want the pods not listed)", got, err, asked)
	}
}

type peersFunc func() ([]string, error)

func (f peersFunc) Peers(context.Context) ([]string, error) { return f() }

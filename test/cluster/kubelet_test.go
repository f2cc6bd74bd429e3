package cluster

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

func newTestKubelet(t *testing.T, podCIDR string) *FakeKubelet {
	t.Helper()
	addr := NodeAddress{IP: netip.MustParseAddr("127.9.9.2"), PodCIDR: netip.MustParsePrefix(podCIDR)}
	k, err := NewFakeKubelet(DefaultFakeKubeletConfig("node-1", addr), &rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testPod(uid, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)},
		Status:     corev1.PodStatus{PodIP: ip},
	}
}

func TestFakeKubelet_podIP(t *testing.T) {
	k := newTestKubelet(t, "198.18.3.0/29") // hosts .1 to .6
	steps := []struct {
		name   string
		pod    *corev1.Pod
		forget bool
		want   string
	}{
		{"first host", testPod("a", ""), false, "198.18.3.1"},
		{"next host", testPod("b", ""), false, "198.18.3.2"},
		{"same pod, same IP", testPod("a", ""), false, "198.18.3.1"},
		{"reported IP is kept", testPod("c", "198.18.3.5"), false, "198.18.3.5"},
		{"IP outside the range is replaced", testPod("d", "10.1.1.1"), false, "198.18.3.3"},
		{"skips an address in use", testPod("e", ""), false, "198.18.3.4"},
		{"last host", testPod("f", ""), false, "198.18.3.6"},
		{"freed address", testPod("b", ""), true, ""},
		{"wraps to the freed address", testPod("g", ""), false, "198.18.3.2"},
		{"full", testPod("h", ""), false, "error"},
	}
	for _, s := range steps {
		if s.forget {
			k.forgetPod(s.pod)
			continue
		}
		ip, err := k.podIP(s.pod)
		got := ip.String()
		if err != nil {
			got = "error"
		}
		if got != s.want {
			t.Errorf("%s: podIP(%s) = %s, want %s", s.name, s.pod.UID, got, s.want)
		}
	}
}

func TestPodRunningAndReady(t *testing.T) {
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
	notReady := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse}
	tests := []struct {
		name string
		st   corev1.PodStatus
		want bool
	}{
		{"pending", corev1.PodStatus{Phase: corev1.PodPending}, false},
		{"running, ready, with IP", corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.0.1", Conditions: []corev1.PodCondition{ready}}, true},
		{"running, no IP", corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{ready}}, false},
		{"marked not ready by the controller", corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.0.1", Conditions: []corev1.PodCondition{notReady}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := podRunningAndReady(&corev1.Pod{Status: tc.st}); got != tc.want {
				t.Errorf("podRunningAndReady = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSetNodeCondition_transitionTime(t *testing.T) {
	t0 := metav1.Unix(100, 0)
	t1 := metav1.Unix(200, 0)
	st := &corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: t0},
	}}
	setNodeCondition(st, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: t1}, t1)
	if got := st.Conditions[0].LastTransitionTime; !got.Equal(&t0) {
		t.Errorf("unchanged status: transition time = %v, want %v", got, t0)
	}
	st.Conditions[0].Status = corev1.ConditionUnknown
	setNodeCondition(st, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: t1}, t1)
	if got := st.Conditions[0].LastTransitionTime; !got.Equal(&t1) {
		t.Errorf("Unknown to True: transition time = %v, want %v", got, t1)
	}
	if len(st.Conditions) != 1 {
		t.Errorf("%d conditions, want 1", len(st.Conditions))
	}
}

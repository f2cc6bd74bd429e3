package nodestatus

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/probe"
)

type chanSource chan probe.Verdict

func (c chanSource) Subscribe() (<-chan probe.Verdict, func()) { return c, func() {} }

func TestCondition(t *testing.T) {
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	since := now.Add(-time.Minute)
	c := Condition(probe.Verdict{Ready: false, FailingCheck: "container-runtime", Reason: "dial unix: no such file", Since: since}, now)
	if c.Status != corev1.ConditionFalse || c.Reason != "CheckFailedContainerRuntime" ||
		c.Message != `check "container-runtime" fails: dial unix: no such file` || !c.LastTransitionTime.Time.Equal(since) {
		t.Fatalf("Condition = %+v", c)
	}
	c = Condition(probe.Verdict{Ready: true}, now)
	if c.Status != corev1.ConditionTrue || c.Reason != "AllChecksPassing" {
		t.Fatalf("Condition = %+v", c)
	}
}

func TestReporter_patchesOwnNodeKeepingKubeletConditions(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
		}},
	}
	client := fake.NewClientset(node)
	src := make(chanSource, 1)
	clk := clocktesting.NewFakeClock(time.Now())
	r, err := New(Config{Node: "node-1"}, Deps{Client: client, Verdicts: src, Clock: clk, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	src <- probe.Verdict{Ready: false, FailingCheck: "kubelet", Reason: "connection refused"}
	cond := waitCondition(t, client, corev1.ConditionFalse)
	if cond.Reason != "CheckFailedKubelet" {
		t.Fatalf("reason = %q", cond.Reason)
	}
	src <- probe.Verdict{Ready: true}
	waitCondition(t, client, corev1.ConditionTrue)
	n, _ := client.CoreV1().Nodes().Get(context.Background(), "node-1", metav1.GetOptions{})
	kept := false
	for _, c := range n.Status.Conditions {
		kept = kept || (c.Type == corev1.NodeReady && c.Reason == "KubeletReady")
	}
	if len(n.Status.Conditions) != 2 || !kept {
		t.Fatalf("conditions = %+v; the kubelet's Ready condition must stay", n.Status.Conditions)
	}
}

func waitCondition(t *testing.T, client *fake.Clientset, want corev1.ConditionStatus) corev1.NodeCondition {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := client.CoreV1().Nodes().Get(context.Background(), "node-1", metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == ConditionType && c.Status == want {
					return c
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("HAAgentReady never became %s", want)
	return corev1.NodeCondition{}
}

func TestNew_errors(t *testing.T) {
	_, err := New(Config{Node: "n"}, Deps{Verdicts: make(chanSource), Logger: zap.NewNop()})
	if want := "nodestatus: New needs a client, a node name, a verdict source and a logger"; err == nil || err.Error() != want {
		t.Fatalf("New(nil client) = %v, want %q", err, want)
	}
}

package evict

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

var ctx = context.Background()

func TestCordon(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	res, err := h.e.Cordon(ctx, "n1", "confirmed dead by 3 of 5")
	if err != nil || !res.Changed {
		t.Fatalf("Cordon = %+v, %v", res, err)
	}
	n := h.node(t, "n1")
	if !n.Spec.Unschedulable {
		t.Error("node not unschedulable")
	}
	want := map[string]string{
		AnnotationCordonedBy:      CordonedByHAAgent,
		AnnotationFailoverReason:  "confirmed dead by 3 of 5",
		AnnotationFailoverStarted: "2026-03-01T12:00:00Z",
	}
	if !reflect.DeepEqual(n.Annotations, want) {
		t.Errorf("annotations = %v, want %v", n.Annotations, want)
	}
	w := h.writes()
	if len(w) != 1 {
		t.Fatalf("writes = %d, want 1", len(w))
	}
	p := w[0].(k8stesting.PatchActionImpl)
	if p.PatchOptions.FieldManager != FieldManager {
		t.Errorf("field manager = %q", p.PatchOptions.FieldManager)
	}
	var body map[string]any
	if err := json.Unmarshal(p.Patch, &body); err != nil {
		t.Fatal(err)
	}
	if rv := body["metadata"].(map[string]any)["resourceVersion"]; rv != "10" {
		t.Errorf("patch resourceVersion precondition = %v, want 10", rv)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonCordoned}) {
		t.Errorf("events = %v", got)
	}

	// Again, even with another reason: nothing to write.
	res, err = h.e.Cordon(ctx, "n1", "another reason")
	if err != nil || res.Changed {
		t.Fatalf("second Cordon = %+v, %v", res, err)
	}
	if len(h.writes()) != 1 {
		t.Errorf("second Cordon wrote")
	}
	if got := h.events(); len(got) != 0 {
		t.Errorf("second Cordon recorded %v", got)
	}
}

func TestCordon_alreadyCordonedBySomeoneElse(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue, cordoned))
	if _, err := h.e.Cordon(ctx, "n1", "dead"); err != nil {
		t.Fatal(err)
	}
	n := h.node(t, "n1")
	if _, ok := n.Annotations[AnnotationCordonedBy]; ok {
		t.Error("cordoned-by set on a node haagent did not cordon")
	}
	if n.Annotations[AnnotationFailoverReason] != "dead" {
		t.Error("reason not recorded")
	}
	if _, err := h.e.Undo(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	n = h.node(t, "n1")
	if !n.Spec.Unschedulable {
		t.Error("Undo removed a cordon that haagent did not set")
	}
	if len(n.Annotations) != 0 {
		t.Errorf("annotations left: %v", n.Annotations)
	}
}

func TestCordon_retriesConflict(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	conflicts := 1
	h.cs.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts > 0 {
			conflicts--
			return true, nil, apierrors.NewConflict(nodesGVR.GroupResource(), "n1", errors.New("object was modified"))
		}
		return false, nil, nil
	})
	if _, err := h.e.Cordon(ctx, "n1", "dead"); err != nil {
		t.Fatal(err)
	}
	if got := len(h.writes()); got != 2 {
		t.Errorf("patches = %d, want 2 (one conflict, one retry)", got)
	}
	if !h.node(t, "n1").Spec.Unschedulable {
		t.Error("not cordoned after retry")
	}
}

func TestNodeActions_errors(t *testing.T) {
	tests := []struct {
		name    string
		reactor k8stesting.ReactionFunc
		check   func(error) bool
	}{
		{"not found", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(nodesGVR.GroupResource(), "n1")
		}, func(err error) bool { return errors.Is(err, ErrNodeNotFound) && apierrors.IsNotFound(err) }},
		{"server error", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewInternalError(errors.New("etcd timeout"))
		}, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && ae.Action == ActionCordon && apierrors.IsInternalError(err)
		}},
		{"conflict forever", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetVerb() != "patch" {
				return false, nil, nil
			}
			return true, nil, apierrors.NewConflict(nodesGVR.GroupResource(), "n1", errors.New("modified"))
		}, func(err error) bool {
			var ae *APIError
			return errors.As(err, &ae) && apierrors.IsConflict(err)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
			h.cs.PrependReactor("*", "nodes", tc.reactor)
			_, err := h.e.Cordon(ctx, "n1", "dead")
			if err == nil || !tc.check(err) {
				t.Errorf("Cordon error = %v", err)
			}
		})
	}
}

func TestTaint(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown))
	res, err := h.e.Taint(ctx, "n1")
	if err != nil || !res.Changed {
		t.Fatalf("Taint = %+v, %v", res, err)
	}
	n := h.node(t, "n1")
	want := []string{"haagent.io/dead:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"}
	if got := taintIDs(n); !reflect.DeepEqual(got, want) {
		t.Errorf("taints = %v, want %v", got, want)
	}
	for _, tt := range n.Spec.Taints {
		if (tt.Effect == corev1.TaintEffectNoExecute) != (tt.TimeAdded != nil) {
			t.Errorf("taint %s TimeAdded = %v", taintID(tt), tt.TimeAdded)
		}
	}
	if got := n.Annotations[AnnotationTaintsAdded]; got != "haagent.io/dead:NoSchedule,node.kubernetes.io/unreachable:NoExecute" {
		t.Errorf("taints-added = %q", got)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonTainted}) {
		t.Errorf("events = %v", got)
	}
	if res, err := h.e.Taint(ctx, "n1"); err != nil || res.Changed || len(h.writes()) != 1 {
		t.Errorf("second Taint = %+v, %v, writes %d", res, err, len(h.writes()))
	}
}

func TestTaint_existingTaintNotRecorded(t *testing.T) {
	// The node lifecycle controller was first with the unreachable taint.
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown, withTaint(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute)))
	if _, err := h.e.Taint(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	n := h.node(t, "n1")
	if got := n.Annotations[AnnotationTaintsAdded]; got != "haagent.io/dead:NoSchedule" {
		t.Errorf("taints-added = %q", got)
	}
	if got := len(n.Spec.Taints); got != 2 {
		t.Errorf("taints = %v", taintIDs(n))
	}
}

func TestMarkNodeNotReady(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	res, err := h.e.MarkNodeNotReady(ctx, "n1")
	if err != nil || !res.Changed {
		t.Fatalf("MarkNodeNotReady = %+v, %v", res, err)
	}
	c := nodeCondition(h.node(t, "n1"), corev1.NodeReady)
	if c.Status != corev1.ConditionUnknown || c.Reason != ConditionReasonNodeDead || c.Message == "" || !c.LastTransitionTime.Time.Equal(testNow) {
		t.Errorf("Ready condition = %+v", c)
	}
	if mp := nodeCondition(h.node(t, "n1"), corev1.NodeMemoryPressure); mp.Status != corev1.ConditionFalse {
		t.Errorf("other condition changed: %+v", mp)
	}
	w := h.writes()
	if len(w) != 1 || w[0].GetSubresource() != "status" {
		t.Fatalf("writes = %v, want one patch of nodes/status", w)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonNodeNotReady}) {
		t.Errorf("events = %v", got)
	}
	if res, err := h.e.MarkNodeNotReady(ctx, "n1"); err != nil || res.Changed || len(h.writes()) != 1 {
		t.Errorf("second MarkNodeNotReady = %+v, %v, writes %d", res, err, len(h.writes()))
	}
}

func TestApplyOutOfService(t *testing.T) {
	t.Run("refuses a ready node", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
		if _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); !errors.Is(err, ErrNodeReady) {
			t.Errorf("err = %v, want ErrNodeReady", err)
		}
		if len(h.writes()) != 0 {
			t.Error("wrote to a ready node")
		}
	})
	t.Run("taints a not-ready node once", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown))
		if _, err := h.e.Taint(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); err != nil {
			t.Fatal(err)
		}
		n := h.node(t, "n1")
		if !hasTaint(n, outOfServiceTaint) {
			t.Errorf("taints = %v", taintIDs(n))
		}
		if got := n.Annotations[AnnotationTaintsAdded]; got != "haagent.io/dead:NoSchedule,node.kubernetes.io/out-of-service:NoExecute,node.kubernetes.io/unreachable:NoExecute" {
			t.Errorf("taints-added = %q", got)
		}
		if got := h.events(); !reflect.DeepEqual(got, []string{ReasonTainted, ReasonOutOfService}) {
			t.Errorf("events = %v", got)
		}
		before := len(h.writes())
		if res, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); err != nil || res.Changed || len(h.writes()) != before {
			t.Errorf("second ApplyOutOfService = %+v, %v", res, err)
		}
	})
}

func TestUndo_leavesWhatOthersSet(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue,
		cordoned,
		withTaint("example.com/maintenance", corev1.TaintEffectNoSchedule),
		withTaint(corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute),
	))
	for _, step := range []func() error{
		func() error { _, err := h.e.Cordon(ctx, "n1", "dead"); return err },
		func() error { _, err := h.e.MarkNodeNotReady(ctx, "n1"); return err },
		func() error { _, err := h.e.Taint(ctx, "n1"); return err },
		func() error { _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	h.events()
	res, err := h.e.Undo(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Uncordoned || !reflect.DeepEqual(res.TaintsRemoved, []string{"haagent.io/dead:NoSchedule", "node.kubernetes.io/out-of-service:NoExecute"}) {
		t.Errorf("Undo = %+v", res)
	}
	n := h.node(t, "n1")
	if !n.Spec.Unschedulable {
		t.Error("manual cordon removed")
	}
	want := []string{"example.com/maintenance:NoSchedule", "node.kubernetes.io/unreachable:NoExecute"}
	if got := taintIDs(n); !reflect.DeepEqual(got, want) {
		t.Errorf("taints = %v, want %v", got, want)
	}
	if len(n.Annotations) != 0 {
		t.Errorf("annotations left: %v", n.Annotations)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonUntainted}) {
		t.Errorf("events = %v", got)
	}
	before := len(h.writes())
	if res, err := h.e.Undo(ctx, "n1"); err != nil || res.Changed || len(h.writes()) != before {
		t.Errorf("second Undo = %+v, %v", res, err)
	}
}

func TestUndo_uncordonsOwnCordon(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	if _, err := h.e.Cordon(ctx, "n1", "dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.e.Taint(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	h.events()
	res, err := h.e.Undo(ctx, "n1")
	if err != nil || !res.Uncordoned || len(res.TaintsRemoved) != 2 {
		t.Fatalf("Undo = %+v, %v", res, err)
	}
	n := h.node(t, "n1")
	if n.Spec.Unschedulable || len(n.Spec.Taints) != 0 || len(n.Annotations) != 0 {
		t.Errorf("node after Undo: unschedulable %v, taints %v, annotations %v", n.Spec.Unschedulable, taintIDs(n), n.Annotations)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonUncordoned, ReasonUntainted}) {
		t.Errorf("events = %v", got)
	}
}

func TestUndo_ignoresForeignEntriesInAnnotation(t *testing.T) {
	n := newNode("n1", corev1.ConditionTrue, withTaint("example.com/other", corev1.TaintEffectNoSchedule))
	n.Annotations = map[string]string{AnnotationTaintsAdded: "example.com/other:NoSchedule"}
	h := newHarness(t, DefaultConfig(), n)
	if _, err := h.e.Undo(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if got := taintIDs(h.node(t, "n1")); !reflect.DeepEqual(got, []string{"example.com/other:NoSchedule"}) {
		t.Errorf("taints = %v", got)
	}
}

func TestOptedOut(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown, withLabel(LabelFailover, FailoverDisabled)),
		newPod("default", "web", "n1"))
	if !OptedOut(h.node(t, "n1")) || OptedOut(newNode("n2", corev1.ConditionTrue)) || OptedOut(nil) {
		t.Error("OptedOut wrong")
	}
	calls := map[string]func() error{
		"Cordon":            func() error { _, err := h.e.Cordon(ctx, "n1", "x"); return err },
		"Taint":             func() error { _, err := h.e.Taint(ctx, "n1"); return err },
		"MarkNodeNotReady":  func() error { _, err := h.e.MarkNodeNotReady(ctx, "n1"); return err },
		"MarkPodsNotReady":  func() error { _, err := h.e.MarkPodsNotReady(ctx, "n1"); return err },
		"EvictPods":         func() error { _, err := h.e.EvictPods(ctx, "n1"); return err },
		"ApplyOutOfService": func() error { _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); return err },
		"ForceDeletePods":   func() error { _, err := h.e.ForceDeletePods(ctx, "n1", nil, FenceCheck{}); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrOptedOut) {
			t.Errorf("%s error = %v, want ErrOptedOut", name, err)
		}
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes on an opted-out node: %v", w)
	}
	if _, err := h.e.Undo(ctx, "n1"); err != nil {
		t.Errorf("Undo on an opted-out node: %v", err)
	}
}

func TestState(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	s, err := h.e.State(ctx, "n1")
	if err != nil || s.InFailover() {
		t.Fatalf("State before = %+v, %v", s, err)
	}
	for _, step := range []func() error{
		func() error { _, err := h.e.Cordon(ctx, "n1", "dead"); return err },
		func() error { _, err := h.e.MarkNodeNotReady(ctx, "n1"); return err },
		func() error { _, err := h.e.Taint(ctx, "n1"); return err },
		func() error { _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	s, err = h.e.State(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := NodeState{
		Ready: corev1.ConditionUnknown, Unschedulable: true, CordonedByHAAgent: true, Reason: "dead",
		Started:      testNow,
		TaintsAdded:  []string{"haagent.io/dead:NoSchedule", "node.kubernetes.io/out-of-service:NoExecute", "node.kubernetes.io/unreachable:NoExecute"},
		OutOfService: true,
	}
	if !reflect.DeepEqual(s, want) || !s.InFailover() {
		t.Errorf("State = %+v\nwant    %+v", s, want)
	}
}

package evict

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	k8stesting "k8s.io/client-go/testing"
)

// evictions returns "namespace/name" of every eviction the fake received.
func (h *harness) evictions() []string {
	var out []string
	for _, a := range h.cs.Actions() {
		if a.GetVerb() == "create" && a.GetSubresource() == "eviction" {
			ev := a.(k8stesting.CreateActionImpl).Object.(*policyv1.Eviction)
			out = append(out, ev.Namespace+"/"+ev.Name)
		}
	}
	return out
}

func (h *harness) deletes() []k8stesting.DeleteActionImpl {
	var out []k8stesting.DeleteActionImpl
	for _, a := range h.cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok {
			out = append(out, d)
		}
	}
	return out
}

func outcomes(r PodsResult) map[string]string {
	out := map[string]string{}
	for _, p := range r.Pods {
		v := string(p.Outcome)
		if p.Detail != "" {
			v += "/" + p.Detail
		}
		out[p.Pod.String()] = v
	}
	return out
}

func TestMarkPodsNotReady(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue),
		newPod("a", "ready-1", "n1"),
		newPod("a", "ready-2", "n1", ownedBy("apps/v1", "DaemonSet", "ds")),
		newPod("a", "not-ready", "n1", notReady),
		newPod("a", "done", "n1", phase(corev1.PodSucceeded)),
		newPod("a", "elsewhere", "n2"),
	)
	res, err := h.e.MarkPodsNotReady(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := NotReadyResult{Node: "n1", Marked: 2, AlreadyNotReady: 1, Finished: 1}
	if res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	for _, name := range []string{"ready-1", "ready-2"} {
		p := h.pod(t, "a", name)
		for _, ct := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			c := condition(p.Status.Conditions, ct)
			if c.Status != corev1.ConditionFalse || c.Reason != ConditionReasonNodeDead || !c.LastTransitionTime.Time.Equal(testNow) {
				t.Errorf("%s %s = %+v", name, ct, c)
			}
		}
	}
	if c := condition(h.pod(t, "a", "elsewhere").Status.Conditions, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Error("pod of another node changed")
	}
	w := h.writes()
	if len(w) != 2 {
		t.Fatalf("writes = %d, want 2", len(w))
	}
	for _, a := range w {
		if a.GetVerb() != "patch" || a.GetSubresource() != "status" || a.(k8stesting.PatchActionImpl).PatchOptions.FieldManager != FieldManager {
			t.Errorf("write %v, want a patch of pods/status by haagent", a)
		}
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonPodsNotReady}) {
		t.Errorf("events = %v", got)
	}

	res, err = h.e.MarkPodsNotReady(ctx, "n1")
	if err != nil || res.Marked != 0 || res.AlreadyNotReady != 3 || len(h.writes()) != 2 {
		t.Errorf("second call = %+v, %v, writes %d", res, err, len(h.writes()))
	}
}

func TestMarkPodsNotReady_errors(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue),
		newPod("a", "p1", "n1"), newPod("a", "p2", "n1"), newPod("a", "p3", "n1"))
	h.cs.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		switch a.(k8stesting.PatchActionImpl).Name {
		case "p1":
			return true, nil, apierrors.NewNotFound(podsGVR.GroupResource(), "p1")
		case "p2":
			return true, nil, apierrors.NewInternalError(errors.New("boom"))
		}
		return false, nil, nil
	})
	res, err := h.e.MarkPodsNotReady(ctx, "n1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Pod != "a/p2" {
		t.Errorf("error = %v, want an *APIError for a/p2", err)
	}
	if res.Marked != 1 || res.Gone != 1 || res.Failed != 1 {
		t.Errorf("result = %+v", res)
	}
}

func TestEvictPods_classification(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown),
		daemonSet("kube-system", "proxy"),
		claim("db", "data-rwo", corev1.ReadWriteOnce),
		claim("db", "data-rwop", corev1.ReadWriteOncePod),
		claim("web", "shared", corev1.ReadWriteMany),
		newPod("kube-system", "proxy-x", "n1", ownedBy("apps/v1", "DaemonSet", "proxy")),
		newPod("kube-system", "etcd-n1", "n1", mirror),
		newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg")),
		newPod("db", "solo-rwo", "n1", ownedBy("apps/v1", "ReplicaSet", "solo"), withClaim("data-rwo")),
		newPod("db", "solo-rwop", "n1", withClaim("data-rwop")),
		newPod("db", "claim-missing", "n1", ownedBy("apps/v1", "ReplicaSet", "x"), withClaim("nope")),
		newPod("web", "front-abc", "n1", ownedBy("apps/v1", "ReplicaSet", "front"), withEmptyDir),
		newPod("web", "shared-abc", "n1", ownedBy("apps/v1", "ReplicaSet", "shared"), withClaim("shared")),
		newPod("web", "bare", "n1"),
		newPod("web", "job-done", "n1", ownedBy("batch/v1", "Job", "j"), phase(corev1.PodSucceeded)),
		newPod("web", "leaving", "n1", ownedBy("apps/v1", "ReplicaSet", "front"), terminating),
		newPod("web", "elsewhere", "n2", ownedBy("apps/v1", "ReplicaSet", "front")),
	)
	res, err := h.e.EvictPods(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kube-system/proxy-x": "skipped/daemonset",
		"kube-system/etcd-n1": "skipped/mirror",
		"db/pg-0":             "fenced_only/statefulset",
		"db/solo-rwo":         "fenced_only/rwo_volume",
		"db/solo-rwop":        "fenced_only/rwo_volume",
		"db/claim-missing":    "fenced_only/rwo_volume",
		"web/front-abc":       "evicted",
		"web/shared-abc":      "evicted",
		"web/bare":            "evicted",
		"web/job-done":        "skipped/finished",
		"web/leaving":         "skipped/terminating",
	}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes =\n%v\nwant\n%v", got, want)
	}
	if got := h.evictions(); !reflect.DeepEqual(sorted(got), []string{"web/bare", "web/front-abc", "web/shared-abc"}) {
		t.Errorf("evictions = %v", got)
	}
	if len(h.deletes()) != 0 {
		t.Error("EvictPods deleted a pod")
	}
	if !res.Done() || res.Err() != nil {
		t.Errorf("Done = %v, Err = %v", res.Done(), res.Err())
	}
	fenced := res.FencedOnly()
	if len(fenced) != 4 || fenced[0].UID == "" {
		t.Errorf("FencedOnly = %v", fenced)
	}
	if got := h.events(); !reflect.DeepEqual(got, []string{ReasonEvicted}) {
		t.Errorf("events = %v", got)
	}
	if got := testutil.ToFloat64(h.e.metrics.evictions.WithLabelValues("evicted")); got != 3 {
		t.Errorf("evicted counter = %v", got)
	}
	if got := testutil.ToFloat64(h.e.metrics.evictions.WithLabelValues("skipped")); got != 4 {
		t.Errorf("skipped counter = %v", got)
	}

	// The evicted pods are now terminating: a second pass evicts nothing.
	before := len(h.writes())
	res, err = h.e.EvictPods(ctx, "n1")
	if err != nil || res.Count(PodEvicted) != 0 || len(h.writes()) != before {
		t.Errorf("second pass: %v, %v, writes %d -> %d", outcomes(res), err, before, len(h.writes()))
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestEvictPods_gracePeriod(t *testing.T) {
	tests := []struct {
		name  string
		grace time.Duration
		want  *int64
	}{
		{"default 30s", 30 * time.Second, ptr(int64(30))},
		{"zero is the pod's own", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.EvictionGracePeriod = tc.grace
			h := newHarness(t, cfg, newNode("n1", corev1.ConditionUnknown), newPod("a", "p", "n1"))
			if _, err := h.e.EvictPods(ctx, "n1"); err != nil {
				t.Fatal(err)
			}
			for _, a := range h.cs.Actions() {
				if a.GetSubresource() == "eviction" {
					got := a.(k8stesting.CreateActionImpl).Object.(*policyv1.Eviction).DeleteOptions.GracePeriodSeconds
					if !reflect.DeepEqual(got, tc.want) {
						t.Errorf("grace = %v, want %v", deref(got), deref(tc.want))
					}
					return
				}
			}
			t.Fatal("no eviction")
		})
	}
}

func ptr[T any](v T) *T { return &v }

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestEvictPods_apiOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		outcome PodOutcome
		check   func(error) bool
		events  []string
	}{
		{"429 is blocked by a budget", apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10),
			PodPDBBlocked, func(err error) bool { var b *PDBBlockedError; return errors.As(err, &b) && b.Pod.Name == "p" }, []string{ReasonEvictionBlocked}},
		{"404 is gone", apierrors.NewNotFound(podsGVR.GroupResource(), "p"), PodGone, func(err error) bool { return err == nil }, nil},
		{"500 is failed", apierrors.NewInternalError(errors.New("boom")), PodFailed,
			func(err error) bool { var a *APIError; return errors.As(err, &a) && a.Pod == "a/p" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown), newPod("a", "p", "n1"))
			h.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				return a.GetSubresource() == "eviction", nil, tc.err
			})
			res, err := h.e.EvictPods(ctx, "n1")
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Pods) != 1 || res.Pods[0].Outcome != tc.outcome || !tc.check(res.Pods[0].Err) {
				t.Fatalf("result = %+v", res.Pods)
			}
			if res.Done() != (tc.outcome == PodGone) {
				t.Errorf("Done = %v", res.Done())
			}
			if len(h.deletes()) != 0 {
				t.Error("a pod was deleted")
			}
			if got := h.events(); !reflect.DeepEqual(got, tc.events) {
				t.Errorf("events = %v, want %v", got, tc.events)
			}
			if got := testutil.ToFloat64(h.e.metrics.evictions.WithLabelValues(string(tc.outcome))); got != 1 {
				t.Errorf("counter %s = %v", tc.outcome, got)
			}
		})
	}
}

func TestEvictPods_listErrorEvictsNothing(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown), newPod("a", "p", "n1"))
	h.cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("overloaded")
	})
	_, err := h.e.EvictPods(ctx, "n1")
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Errorf("error = %v, want *APIError", err)
	}
	if len(h.writes()) != 0 {
		t.Error("wrote after a failed list")
	}
}

func TestEvictPods_unreadableClaimEvictsNothing(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown),
		newPod("a", "p1", "n1"), newPod("a", "p2", "n1", ownedBy("apps/v1", "ReplicaSet", "rs"), withClaim("data")))
	h.cs.PrependReactor("get", "persistentvolumeclaims", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errors.New("boom"))
	})
	_, err := h.e.EvictPods(ctx, "n1")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Action != ActionEvictPods {
		t.Errorf("error = %v, want *APIError", err)
	}
	if len(h.writes()) != 0 {
		t.Error("evicted without knowing the claim's access modes")
	}
}

func TestCordon_longReasonIsTruncated(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue))
	long := strings.Repeat("é", maxReasonBytes)
	if _, err := h.e.Cordon(ctx, "n1", long); err != nil {
		t.Fatal(err)
	}
	got := h.node(t, "n1").Annotations[AnnotationFailoverReason]
	if len(got) > maxReasonBytes || !utf8.ValidString(got) {
		t.Errorf("reason: %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestEvictPods_cap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPodsPerNode = 2
	h := newHarness(t, cfg, newNode("n1", corev1.ConditionUnknown),
		newPod("a", "p1", "n1"), newPod("a", "p2", "n1"), newPod("a", "p3", "n1"))
	res, err := h.e.EvictPods(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(PodEvicted) != 2 || res.Count(PodDeferred) != 1 || res.Done() {
		t.Errorf("first pass = %v", outcomes(res))
	}
	res, err = h.e.EvictPods(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(PodEvicted) != 1 || !res.Done() {
		t.Errorf("second pass = %v", outcomes(res))
	}
	if got := len(h.evictions()); got != 3 {
		t.Errorf("evictions = %d, want 3", got)
	}
}

func TestForceDeletePods(t *testing.T) {
	oos := withTaint(corev1.TaintNodeOutOfService, corev1.TaintEffectNoExecute)
	t.Run("refuses without out-of-service taint", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown), newPod("db", "pg-0", "n1"))
		if _, err := h.e.ForceDeletePods(ctx, "n1", []PodRef{{Namespace: "db", Name: "pg-0", UID: "uid-db-pg-0"}}, FenceCheck{}); !errors.Is(err, ErrNotOutOfService) {
			t.Errorf("err = %v", err)
		}
		if len(h.writes()) != 0 {
			t.Error("wrote")
		}
	})
	t.Run("refuses a ready node", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue, oos))
		if _, err := h.e.ForceDeletePods(ctx, "n1", nil, FenceCheck{}); !errors.Is(err, ErrNodeReady) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("deletes with grace 0 and UID precondition", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown, oos),
			newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg")),
			newPod("web", "stuck", "n1", terminating),
			newPod("web", "running", "n1"),
			newPod("db", "pg-1", "n2", ownedBy("apps/v1", "StatefulSet", "pg")),
		)
		res, err := h.e.ForceDeletePods(ctx, "n1", []PodRef{
			{Namespace: "db", Name: "pg-0", UID: "uid-db-pg-0"},
			{Namespace: "db", Name: "pg-1", UID: "uid-db-pg-1"}, // on another node
			{Namespace: "db", Name: "pg-2"},                     // no UID
		}, FenceCheck{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"db/pg-0":   "deleted/requested",
			"db/pg-1":   "gone/requested",
			"db/pg-2":   "failed/requested",
			"web/stuck": "deleted/terminating",
		}
		if got := outcomes(res); !reflect.DeepEqual(got, want) {
			t.Errorf("outcomes = %v, want %v", got, want)
		}
		if !errors.Is(res.Err(), ErrNoUID) {
			t.Errorf("Err = %v", res.Err())
		}
		d := h.deletes()
		if len(d) != 2 {
			t.Fatalf("deletes = %v", d)
		}
		for _, a := range d {
			o := a.DeleteOptions
			if o.GracePeriodSeconds == nil || *o.GracePeriodSeconds != 0 || o.Preconditions == nil || o.Preconditions.UID == nil ||
				*o.Preconditions.UID != types.UID("uid-"+a.Namespace+"-"+a.Name) {
				t.Errorf("delete %s/%s options = %+v", a.Namespace, a.Name, o)
			}
		}
		if _, err := h.cs.Tracker().Get(podsGVR, "web", "running"); err != nil {
			t.Error("a running pod that was not asked for was deleted")
		}
		if got := h.events(); !reflect.DeepEqual(got, []string{ReasonForceDeleted}) {
			t.Errorf("events = %v", got)
		}
		before := len(h.writes())
		if _, err := h.e.ForceDeletePods(ctx, "n1", res.With(PodDeleted), FenceCheck{}); err != nil || len(h.writes()) != before {
			t.Errorf("second call: %v, writes %d -> %d", err, before, len(h.writes()))
		}
	})
	t.Run("never deletes a recreated pod with the same name", func(t *testing.T) {
		h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown, oos))
		old := newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg"))
		recreated := old.DeepCopy()
		recreated.UID = "uid-new"
		if err := h.cs.Tracker().Add(recreated); err != nil {
			t.Fatal(err)
		}
		// A stale list still shows the old pod on the node.
		h.cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, &corev1.PodList{Items: []corev1.Pod{*old}}, nil
		})
		res, err := h.e.ForceDeletePods(ctx, "n1", []PodRef{refOf(old)}, FenceCheck{})
		if err != nil {
			t.Fatal(err)
		}
		if got := outcomes(res); !reflect.DeepEqual(got, map[string]string{"db/pg-0": "gone/requested"}) {
			t.Errorf("outcomes = %v", got)
		}
		if p := h.pod(t, "db", "pg-0"); p.UID != "uid-new" {
			t.Error("the recreated pod was deleted")
		}
	})
}

// TestDryRun runs every action with Config.DryRun: each write carries
// DryRun=All, nothing changes, no Event is recorded, and the outcomes are
// reported as they would be.
func TestDryRun(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DryRun = true
	alive := newNode("n1", corev1.ConditionTrue)
	back := newNode("n2", corev1.ConditionUnknown, cordoned, withTaint(TaintDead, corev1.TaintEffectNoSchedule))
	back.Annotations = map[string]string{AnnotationCordonedBy: CordonedByHAAgent, AnnotationTaintsAdded: "haagent.io/dead:NoSchedule"}
	objs := []runtime.Object{alive, back,
		newPod("a", "web", "n1", ownedBy("apps/v1", "ReplicaSet", "web")),
		newPod("a", "pg-0", "n2", ownedBy("apps/v1", "StatefulSet", "pg")),
	}
	h := newHarness(t, cfg, objs...)

	steps := []struct {
		name string
		run  func() (changed bool, err error)
	}{
		{"Cordon", func() (bool, error) { r, err := h.e.Cordon(ctx, "n1", "dead"); return r.Changed, err }},
		{"MarkNodeNotReady", func() (bool, error) { r, err := h.e.MarkNodeNotReady(ctx, "n1"); return r.Changed, err }},
		{"Taint", func() (bool, error) { r, err := h.e.Taint(ctx, "n1"); return r.Changed, err }},
		{"MarkPodsNotReady", func() (bool, error) { r, err := h.e.MarkPodsNotReady(ctx, "n1"); return r.Marked == 1, err }},
		{"EvictPods", func() (bool, error) { r, err := h.e.EvictPods(ctx, "n1"); return r.Count(PodEvicted) == 1, err }},
		{"ApplyOutOfService", func() (bool, error) { r, err := h.e.ApplyOutOfService(ctx, "n2", FenceCheck{}); return r.Changed, err }},
		{"ForceDeletePods", func() (bool, error) {
			r, err := h.e.ForceDeletePods(ctx, "n2", []PodRef{{Namespace: "a", Name: "pg-0", UID: "uid-a-pg-0"}}, FenceCheck{})
			return r.Count(PodDeleted) == 1, err
		}},
		{"Undo", func() (bool, error) { r, err := h.e.Undo(ctx, "n2"); return r.Changed && r.Uncordoned, err }},
	}
	for _, s := range steps {
		before := len(h.writes())
		changed, err := s.run()
		if err != nil || !changed {
			t.Errorf("%s: changed %v, err %v", s.name, changed, err)
		}
		if len(h.writes()) == before {
			t.Errorf("%s sent no dry-run write", s.name)
		}
	}
	for _, a := range h.writes() {
		if got := dryRunOf(a); !reflect.DeepEqual(got, []string{metav1.DryRunAll}) {
			t.Errorf("%s %s/%s without DryRun=All: %v", a.GetVerb(), a.GetResource().Resource, a.GetSubresource(), got)
		}
	}
	for _, o := range objs {
		m := o.(metav1.Object)
		gvr := podsGVR
		if _, ok := o.(*corev1.Node); ok {
			gvr = nodesGVR
		}
		got, err := h.cs.Tracker().Get(gvr, m.GetNamespace(), m.GetName())
		if err != nil {
			t.Errorf("%s deleted: %v", m.GetName(), err)
			continue
		}
		if !reflect.DeepEqual(got, o) {
			t.Errorf("%s changed in a dry run", m.GetName())
		}
	}
	if got := h.events(); len(got) != 0 {
		t.Errorf("events in a dry run: %v", got)
	}
	if got := testutil.ToFloat64(h.e.metrics.actions.WithLabelValues(string(ActionCordon), resultDryRun)); got != 1 {
		t.Errorf("actions_total{cordon,dry_run} = %v", got)
	}
	if got := testutil.ToFloat64(h.e.metrics.evictions.WithLabelValues("evicted")); got != 0 {
		t.Errorf("dry-run eviction counted: %v", got)
	}
}

// TestFailover_repeatable runs a whole failover twice, as a coordinator
// that took over after a restart would: the second run writes nothing.
func TestFailover_repeatable(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionTrue),
		daemonSet("kube-system", "proxy"),
		claim("db", "data", corev1.ReadWriteOnce),
		newPod("kube-system", "proxy-x", "n1", ownedBy("apps/v1", "DaemonSet", "proxy")),
		newPod("web", "front-1", "n1", ownedBy("apps/v1", "ReplicaSet", "front")),
		newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg"), withClaim("data")),
	)
	run := func() {
		t.Helper()
		if _, err := h.e.Cordon(ctx, "n1", "dead"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.e.MarkNodeNotReady(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.e.Taint(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.e.MarkPodsNotReady(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		res, err := h.e.EvictPods(ctx, "n1")
		if err != nil || !res.Done() {
			t.Fatalf("EvictPods = %v, %v", outcomes(res), err)
		}
		if _, err := h.e.ApplyOutOfService(ctx, "n1", FenceCheck{}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.e.ForceDeletePods(ctx, "n1", res.FencedOnly(), FenceCheck{}); err != nil {
			t.Fatal(err)
		}
	}
	run()
	first := len(h.writes())
	gotEvents := h.events()
	wantEvents := []string{ReasonCordoned, ReasonNodeNotReady, ReasonTainted, ReasonPodsNotReady, ReasonEvicted, ReasonOutOfService, ReasonForceDeleted}
	if !reflect.DeepEqual(gotEvents, wantEvents) {
		t.Errorf("events = %v, want %v", gotEvents, wantEvents)
	}
	if _, err := h.cs.Tracker().Get(podsGVR, "db", "pg-0"); !apierrors.IsNotFound(err) {
		t.Errorf("StatefulSet pod not force-deleted: %v", err)
	}
	run()
	if extra := h.writes()[first:]; len(extra) != 0 {
		t.Errorf("second run wrote %d times: %v", len(extra), extra)
	}
	if got := h.events(); len(got) != 0 {
		t.Errorf("second run recorded %v", got)
	}
	if got := testutil.ToFloat64(h.e.metrics.actions.WithLabelValues(string(ActionEvictPods), resultSuccess)); got != 2 {
		t.Errorf("actions_total{evict_pods,success} = %v", got)
	}
	if got := testutil.CollectAndCount(h.e.metrics.duration); got != len(allActions) {
		t.Errorf("duration series = %d", got)
	}
}

// TestPodsAwaitingFence: the pods that EvictPods holds for the fence are
// reported by the same rules, a terminating StatefulSet pod included (its
// object still keeps a replacement from starting), and nothing is written.
func TestPodsAwaitingFence(t *testing.T) {
	h := newHarness(t, DefaultConfig(), newNode("n1", corev1.ConditionUnknown),
		daemonSet("kube-system", "proxy"),
		claim("db", "data-rwo", corev1.ReadWriteOnce),
		newPod("kube-system", "proxy-x", "n1", ownedBy("apps/v1", "DaemonSet", "proxy")),
		newPod("db", "pg-0", "n1", ownedBy("apps/v1", "StatefulSet", "pg")),
		newPod("db", "pg-1", "n1", ownedBy("apps/v1", "StatefulSet", "pg"), terminating),
		newPod("db", "solo-rwo", "n1", ownedBy("apps/v1", "ReplicaSet", "solo"), withClaim("data-rwo")),
		newPod("db", "pg-2", "n2", ownedBy("apps/v1", "StatefulSet", "pg")),
		newPod("web", "front-abc", "n1", ownedBy("apps/v1", "ReplicaSet", "front")),
	)
	got, err := h.e.PodsAwaitingFence(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.String())
	}
	if want := []string{"db/pg-0", "db/pg-1", "db/solo-rwo"}; !reflect.DeepEqual(names, want) {
		t.Errorf("PodsAwaitingFence = %v, want %v", names, want)
	}
	if w := h.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none", w)
	}
	if got := testutil.ToFloat64(h.e.metrics.actions.WithLabelValues(string(ActionPodsAwaitingFence), resultSuccess)); got != 1 {
		t.Errorf("haagent_evict_actions_total{action=pods_awaiting_fence,result=success} = %v, want 1", got)
	}

	if _, err := h.e.PodsAwaitingFence(ctx, "gone"); !errors.Is(err, ErrNodeNotFound) {
		t.Errorf("PodsAwaitingFence of a deleted Node = %v, want ErrNodeNotFound", err)
	}
}

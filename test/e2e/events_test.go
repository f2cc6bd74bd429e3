package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cluster"
)

// TestEvents_crashAndReturn follows the failover of a crashed node as a
// user would, with the real kubectl: kubectl wait on the record's Ready
// condition (its workloads back elsewhere) and, once the node has
// returned, on Completed; then the Events on the record, one per phase in
// order, and the Event on the pod the failover evicted.
func TestEvents_crashAndReturn(t *testing.T) {
	tc, _ := failoverCluster(t, 3, fakeGround)
	cp := tc.cp
	ctx := context.Background()
	var holder string
	eventually(t, time.Minute, "a coordinator", func(ctx context.Context) (bool, error) {
		var err error
		holder, err = coordinator(ctx, cp.Client())
		return holder != "", err
	})
	var victim *cluster.Node
	for _, n := range tc.nodes {
		if n.Name() != holder {
			victim = n
			break
		}
	}
	t.Logf("coordinator is %s: crashing %s", holder, victim.Name())
	if _, err := victim.Crash(); err != nil {
		t.Fatal(err)
	}

	var name string
	eventually(t, time.Minute, "a failover record of "+victim.Name(), func(ctx context.Context) (bool, error) {
		r, ok := recordOf(failoverRecords(ctx, t, cp), victim.Name())
		name = r.Name
		return ok, nil
	})
	kubectl := func(timeout time.Duration, args ...string) string {
		t.Helper()
		kctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, err := cp.Kubectl(kctx, nil, args...)
		if err != nil {
			t.Fatalf("%v", err)
		}
		return string(out)
	}
	start := time.Now()
	kubectl(4*time.Minute, "wait", "--for=condition=Ready", "nodefailover/"+name, "--timeout=3m")
	t.Logf("kubectl wait: %s Ready after %s", name, time.Since(start).Round(10*time.Millisecond))
	if phase := kubectl(time.Minute, "get", "nodefailover", name, "-o", "jsonpath={.status.phase}"); phase != string(record.PhaseRecovered) {
		t.Errorf("phase once Ready = %q, want Recovered: the node has not returned yet", phase)
	}

	if err := victim.Return(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	kubectl(4*time.Minute, "wait", "--for=condition=Completed", "nodefailover/"+name, "--timeout=3m")
	t.Logf("kubectl wait: %s Completed %s after the return", name, time.Since(start).Round(10*time.Millisecond))
	got := kubectl(time.Minute, "get", "nodefailover", name, "-o",
		`jsonpath={.status.phase} {.metadata.generation} {.status.observedGeneration} {.status.conditions[?(@.type=="Completed")].reason} {.status.conditions[?(@.type=="Failed")].status}`)
	if want := "Completed 1 1 HandedBack False"; got != want {
		t.Errorf("phase, generation, observedGeneration, Completed reason, Failed status = %q, want %q", got, want)
	}

	// The Events are written asynchronously: wait for the last one.
	want := []string{"Confirmed", "Cordoned", "Tainted", "PodsNotReady", "Recovering", "Recovered", "NodeReturned", "Completed"}
	var events []corev1.Event
	eventually(t, time.Minute, "the Completed Event on "+name, func(ctx context.Context) (bool, error) {
		events = eventsOf(ctx, t, cp, "involvedObject.kind=NodeFailover,involvedObject.name="+name)
		return slices.ContainsFunc(events, func(e corev1.Event) bool { return e.Reason == "Completed" }), nil
	})
	var reasons []string
	for _, e := range events {
		if e.Type != corev1.EventTypeNormal || e.Source.Component != "haagent" || e.Namespace != "default" {
			t.Errorf("Event %s on the record: type %s, source %s, namespace %s; want Normal from haagent in default",
				e.Reason, e.Type, e.Source.Component, e.Namespace)
		}
		// Evictions refused at first by the web PodDisruptionBudget pass
		// through Evicting; either way is right.
		if e.Reason != string(record.PhaseEvicting) {
			reasons = append(reasons, e.Reason)
		}
	}
	if !slices.Equal(reasons, want) {
		t.Errorf("Events on the record, in order = %v, want %v (Evicting aside)", reasons, want)
	}
	// kubectl describe finds them by the record's UID.
	if out := kubectl(time.Minute, "describe", "nodefailover", name); !strings.Contains(out, "NodeReturned") ||
		!strings.Contains(out, "HandedBack") {
		t.Errorf("kubectl describe nodefailover shows neither the Events nor the conditions:\n%s", out)
	}

	podEvents := eventsOf(ctx, t, cp, "involvedObject.kind=Pod,reason=HAAgentEvicted")
	if len(podEvents) != 1 || !strings.Contains(podEvents[0].Message, "node "+victim.Name()) || !strings.Contains(podEvents[0].Message, name) {
		t.Errorf("HAAgentEvicted Events on pods = %+v, want one naming %s and %s (one web pod per node)", podEvents, victim.Name(), name)
	}
	for _, e := range events {
		t.Logf("%s %s %s: %s", e.Type, e.Reason, e.InvolvedObject.Name, e.Message)
	}
}

// eventsOf lists the Events that match the field selector, with kubectl,
// in the order they were written: by resourceVersion, since their
// timestamps keep whole seconds. (A repeated Event is patched and moves to
// the end; the record's phase Events never repeat.)
func eventsOf(ctx context.Context, t *testing.T, cp *cluster.ControlPlane, selector string) []corev1.Event {
	t.Helper()
	out, err := cp.Kubectl(ctx, nil, "get", "events", "-A", "--field-selector", selector, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list corev1.EventList
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("kubectl get events: %v\n%s", err, out)
	}
	rv := func(e corev1.Event) int64 {
		n, _ := strconv.ParseInt(e.ResourceVersion, 10, 64)
		return n
	}
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return cmp.Compare(rv(a), rv(b)) })
	return list.Items
}

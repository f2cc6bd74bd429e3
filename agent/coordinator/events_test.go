package coordinator

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/record"
)

// event is one Event as the coordinator recorded it.
type event struct {
	kind, namespace, name, uid string
	typ, reason, message       string
}

// eventLog is a kuberecord.EventRecorder that keeps every Event with the
// object it is about, which the client-go FakeRecorder does not say.
type eventLog struct {
	mu     sync.Mutex
	events []event
}

func (l *eventLog) Event(obj runtime.Object, typ, reason, message string) {
	ref, ok := obj.(*corev1.ObjectReference)
	if !ok {
		panic(fmt.Sprintf("Event about a %T, want an *ObjectReference", obj))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, event{kind: ref.Kind, namespace: ref.Namespace, name: ref.Name, uid: string(ref.UID),
		typ: typ, reason: reason, message: message})
}

func (l *eventLog) Eventf(obj runtime.Object, typ, reason, format string, args ...any) {
	l.Event(obj, typ, reason, fmt.Sprintf(format, args...))
}

func (l *eventLog) AnnotatedEventf(obj runtime.Object, _ map[string]string, typ, reason, format string, args ...any) {
	l.Eventf(obj, typ, reason, format, args...)
}

// about returns the Events about the object of that kind and name.
func (l *eventLog) about(kind, name string) []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event
	for _, e := range l.events {
		if e.kind == kind && e.name == name {
			out = append(out, e)
		}
	}
	return out
}

func reasons(events []event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.typ + " " + e.reason
	}
	return out
}

// TestCoordinator_holdEvents: a confirmed dead node held back by a guard
// gets one Warning on its Node per reason, not one per pass: Held for a
// guard about the node, Paused for a pause of automatic failover.
func TestCoordinator_holdEvents(t *testing.T) {
	optedOut := node("n5")
	optedOut.Labels = map[string]string{evict.LabelFailover: evict.FailoverDisabled}
	cfg := DefaultConfig()
	cfg.Decide.MaxDeadFraction = 0.3
	tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3", "n4", "n5"},
		node("n1"), node("n2"), node("n3"), node("n4"), optedOut)
	tc.leading.Store(true)
	tc.gossip.set("n5", gossip.StateDead)
	tc.voteDead("n5", "n1", "n2", "n3")
	tc.steps(5)
	if len(tc.active) != 0 {
		t.Fatalf("failed an opted-out node over: %v", tc.active)
	}
	got := tc.events.about("Node", "n5")
	if want := []string{"Warning " + ReasonFailoverHeld}; !slices.Equal(reasons(got), want) {
		t.Fatalf("Events on n5 = %v, want %v", got, want)
	}
	if !strings.Contains(got[0].message, "opted out") || got[0].uid != "n5" {
		t.Errorf("held Event = %+v, want the reason, on the Node by name", got[0])
	}

	// n4 dies too: two of five dead is more than the dead fraction of 0.3.
	tc.gossip.set("n4", gossip.StateDead)
	tc.voteDead("n4", "n1", "n2", "n3")
	tc.steps(5)
	if len(tc.active) != 0 {
		t.Fatalf("failed over while paused: %v", tc.active)
	}
	for _, n := range []string{"n4", "n5"} {
		evs := tc.events.about("Node", n)
		if len(evs) == 0 || evs[len(evs)-1].reason != ReasonFailoverPaused || evs[len(evs)-1].typ != corev1.EventTypeWarning {
			t.Errorf("Events on %s = %v, want a Warning %s last", n, evs, ReasonFailoverPaused)
		}
	}
	if n := len(tc.events.about("Node", "n4")); n != 1 {
		t.Errorf("%d Events on n4 in 5 passes, want 1", n)
	}

	// Not leading, this agent's own view of the pause records nothing.
	before := len(tc.events.events)
	tc.leading.Store(false)
	tc.hold(t.Context(), failover.Decision{Action: failover.ActionHold, Target: "n3", Reason: "rate limit", Tally: failover.Tally{Target: "n3"}})
	if len(tc.events.events) != before {
		t.Errorf("an agent that does not lead recorded %v", tc.events.events[before:])
	}
}

// TestCoordinator_failedEvent: a failover that times out in Recovering
// ends with a Warning Failed Event and the Failed condition saying why.
func TestCoordinator_failedEvent(t *testing.T) {
	ctx := t.Context()
	cfg := DefaultConfig()
	tc := newTestCoordinator(t, cfg, []string{"n1", "n2", "n3"}, node("n1"), node("n2"), failedNode("n3"),
		statefulSet(1), statefulPod("db-0", "n3"))
	tc.gossip.set("n3", gossip.StateDead)
	tc.addRecovering(t, "n3", tc.clock.Now(),
		record.AffectedOwner{Kind: "StatefulSet", Namespace: "default", Name: "db", DesiredReplicas: 1})
	if err := tc.load(ctx); err != nil {
		t.Fatal(err)
	}
	tc.steps(1)
	tc.clock.Step(cfg.RecoveryTimeout)
	tc.steps(1)
	rec := tc.record(t, "n3")
	got := tc.events.about(record.Kind, rec.Name)
	if want := []string{"Warning Failed"}; !slices.Equal(reasons(got), want) {
		t.Fatalf("Events on %s = %v, want %v", rec.Name, got, want)
	}
	if !strings.Contains(got[0].message, "StatefulSet default/db") {
		t.Errorf("Failed Event message = %q, want the owners still short", got[0].message)
	}
	c := meta.FindStatusCondition(rec.Status.Conditions, record.ConditionFailed)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != record.ReasonRecoveryTimedOut {
		t.Errorf("Failed condition = %+v, want True, %s", c, record.ReasonRecoveryTimedOut)
	}
}

// TestEventReasons_documented: every Event reason is in the operations
// guide, where users look them up.
func TestEventReasons_documented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range EventReasons() {
		if !strings.Contains(string(doc), "`"+r+"`") {
			t.Errorf("docs/operations.md does not name the Event reason `%s`", r)
		}
	}
}

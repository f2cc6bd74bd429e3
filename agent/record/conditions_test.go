package record

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cond is the part of a condition the table compares: status, reason and
// when it last changed, as milliseconds after t0 (metav1.Time keeps whole
// seconds, so the times below are whole seconds).
type cond struct {
	status metav1.ConditionStatus
	reason string
	at     time.Duration
}

func (c cond) String() string { return fmt.Sprintf("%s/%s@%s", c.status, c.reason, c.at) }

func TestSetConditions(t *testing.T) {
	sec := func(n int) *metav1.MicroTime { return At(t0.Truncate(time.Second).Add(time.Duration(n) * time.Second)) }
	now := t0.Truncate(time.Second).Add(time.Minute)
	const nowAt = time.Minute
	tests := []struct {
		name string
		st   NodeFailoverStatus
		// fail, if set, ends the record with Fail(now, fail, ...) first.
		fail                    string
		ready, completed, faild cond
	}{
		{
			name:      "confirmed",
			st:        NodeFailoverStatus{Phase: PhaseConfirmed, Confirmed: sec(1)},
			ready:     cond{"False", "Confirmed", nowAt},
			completed: cond{"False", "Confirmed", nowAt},
			faild:     cond{"False", "Confirmed", nowAt},
		},
		{
			name:      "awaiting the fence",
			st:        NodeFailoverStatus{Phase: PhaseAwaitingFence, Confirmed: sec(1), EvictionsAccepted: sec(3)},
			ready:     cond{"False", "AwaitingFence", nowAt},
			completed: cond{"False", "AwaitingFence", nowAt},
			faild:     cond{"False", "AwaitingFence", nowAt},
		},
		{
			name:      "workloads recovered",
			st:        NodeFailoverStatus{Phase: PhaseRecovered, WorkloadsRecovered: sec(9)},
			ready:     cond{"True", ReasonWorkloadsRecovered, 9 * time.Second},
			completed: cond{"False", "Recovered", nowAt},
			faild:     cond{"False", "Recovered", nowAt},
		},
		{
			name:      "handed back",
			st:        NodeFailoverStatus{Phase: PhaseCompleted, WorkloadsRecovered: sec(9), NodeReturned: sec(20), Uncordoned: sec(25)},
			ready:     cond{"True", ReasonWorkloadsRecovered, 9 * time.Second},
			completed: cond{"True", ReasonHandedBack, 25 * time.Second},
			faild:     cond{"False", "Completed", nowAt},
		},
		{
			name:      "handed back before the workloads were",
			st:        NodeFailoverStatus{Phase: PhaseCompleted, NodeReturned: sec(20), Uncordoned: sec(25)},
			ready:     cond{"True", ReasonNodeReturned, 20 * time.Second},
			completed: cond{"True", ReasonHandedBack, 25 * time.Second},
			faild:     cond{"False", "Completed", nowAt},
		},
		{
			name:      "node deleted after recovery",
			st:        NodeFailoverStatus{Phase: PhaseCompleted, WorkloadsRecovered: sec(9)},
			ready:     cond{"True", ReasonWorkloadsRecovered, 9 * time.Second},
			completed: cond{"True", ReasonNodeDeleted, nowAt},
			faild:     cond{"False", "Completed", nowAt},
		},
		{
			name:      "aborted: the node came back",
			st:        NodeFailoverStatus{Phase: PhaseAborted, NodeReturned: sec(4), Uncordoned: sec(4)},
			ready:     cond{"True", ReasonNodeReturned, 4 * time.Second},
			completed: cond{"True", ReasonAborted, nowAt},
			faild:     cond{"False", "Aborted", nowAt},
		},
		{
			name: "superseded drain",
			st: NodeFailoverStatus{Phase: PhaseAborted, Conditions: []metav1.Condition{{Type: ConditionSuperseded,
				Status: "True", Reason: "ConfirmedDead", LastTransitionTime: metav1.NewTime(sec(30).Time)}}},
			ready:     cond{"False", ReasonSuperseded, nowAt},
			completed: cond{"True", ReasonSuperseded, 30 * time.Second},
			faild:     cond{"False", "Aborted", nowAt},
		},
		{
			name:      "failed with a reason",
			st:        NodeFailoverStatus{Phase: PhaseRecovering},
			fail:      ReasonRecoveryTimedOut,
			ready:     cond{"False", "Failed", nowAt},
			completed: cond{"False", "Failed", nowAt},
			faild:     cond{"True", ReasonRecoveryTimedOut, nowAt},
		},
		{
			name:      "failed without a reason",
			st:        NodeFailoverStatus{Phase: PhaseFailed},
			ready:     cond{"False", "Failed", nowAt},
			completed: cond{"False", "Failed", nowAt},
			faild:     cond{"True", ReasonFailed, nowAt},
		},
		{
			name:      "failed after the workloads were back",
			st:        NodeFailoverStatus{Phase: PhaseFailed, WorkloadsRecovered: sec(9)},
			ready:     cond{"True", ReasonWorkloadsRecovered, 9 * time.Second},
			completed: cond{"False", "Failed", nowAt},
			faild:     cond{"True", ReasonFailed, nowAt},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := *tc.st.DeepCopy()
			st.Message = "note on the phase"
			if tc.fail != "" {
				if err := st.Fail(now, tc.fail, "why it failed"); err != nil {
					t.Fatal(err)
				}
			}
			st.SetConditions(3, now)
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration = %d, want 3", st.ObservedGeneration)
			}
			for _, want := range []struct {
				typ string
				c   cond
			}{{ConditionReady, tc.ready}, {ConditionCompleted, tc.completed}, {ConditionFailed, tc.faild}} {
				c := meta.FindStatusCondition(st.Conditions, want.typ)
				if c == nil {
					t.Errorf("no %s condition in %+v", want.typ, st.Conditions)
					continue
				}
				got := cond{c.Status, c.Reason, c.LastTransitionTime.Sub(t0.Truncate(time.Second))}
				if got != want.c {
					t.Errorf("%s = %s, want %s", want.typ, got, want.c)
				}
				if c.ObservedGeneration != 3 {
					t.Errorf("%s observedGeneration = %d, want 3", want.typ, c.ObservedGeneration)
				}
				if c.Status == metav1.ConditionFalse && c.Message != st.Message {
					t.Errorf("%s message = %q, want the status message", want.typ, c.Message)
				}
			}
			if s := meta.FindStatusCondition(st.Conditions, ConditionSuperseded); (s != nil) != (tc.ready.reason == ReasonSuperseded) {
				t.Errorf("Superseded condition = %+v", s)
			}
		})
	}
}

// TestSetConditions_transitions: a condition keeps its transition time
// while its status stays, follows the phase in its reason and message,
// and changes when its status does.
func TestSetConditions_transitions(t *testing.T) {
	at := func(n int) time.Time { return t0.Truncate(time.Second).Add(time.Duration(n) * time.Second) }
	st := NodeFailoverStatus{Phase: PhaseCordoned, Message: "cordoned"}
	st.SetConditions(1, at(1))
	if err := st.Advance(PhaseRecovering); err != nil {
		t.Fatal(err)
	}
	st.Message = "waiting"
	st.SetConditions(0, at(5))
	c := meta.FindStatusCondition(st.Conditions, ConditionCompleted)
	if c.Reason != "Recovering" || c.Message != "waiting" || !c.LastTransitionTime.Time.Equal(at(1)) || c.ObservedGeneration != 1 {
		t.Errorf("Completed while recovering = %+v, want reason Recovering since %s, generation 1 kept", c, at(1))
	}
	st.WorkloadsRecovered, st.NodeReturned, st.Uncordoned = At(at(8)), At(at(10)), At(at(12))
	if err := st.Advance(PhaseCompleted); err != nil {
		t.Fatal(err)
	}
	st.SetConditions(1, at(13))
	c = meta.FindStatusCondition(st.Conditions, ConditionCompleted)
	if c.Status != metav1.ConditionTrue || !c.LastTransitionTime.Time.Equal(at(12)) {
		t.Errorf("Completed after the hand-back = %+v, want True since the uncordon at %s", c, at(12))
	}
	if len(st.Conditions) != 3 {
		t.Errorf("conditions = %+v, want one of each type", st.Conditions)
	}

	var empty NodeFailoverStatus
	empty.SetConditions(1, at(1))
	if empty.Conditions != nil || empty.ObservedGeneration != 0 {
		t.Errorf("a status without a phase got %+v", empty)
	}
}

// TestFail: Fail ends the record Failed with its reason, and refuses an
// ended record.
func TestFail(t *testing.T) {
	f := confirmed(t, "worker-1")
	if err := f.Status.Fail(t0, ReasonOptedOut, "opted out"); err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(f.Status.Conditions, ConditionFailed)
	if f.Status.Phase != PhaseFailed || f.Status.Outcome != OutcomeFailed || f.Status.Message != "opted out" ||
		c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonOptedOut {
		t.Fatalf("status = %+v", f.Status)
	}
	done := confirmed(t, "worker-2")
	if err := done.Status.Advance(PhaseCompleted); err != nil {
		t.Fatal(err)
	}
	if err := done.Status.Fail(t0, ReasonOptedOut, "late"); !errors.Is(err, ErrPhaseOrder) || done.Status.Phase != PhaseCompleted ||
		done.Status.Conditions != nil {
		t.Errorf("Fail of a completed record = %v, status %+v", err, done.Status)
	}
}

// TestStore_writesConditions: what the Store writes carries the derived
// conditions and the generation it was written for, stamped by its clock.
func TestStore_writesConditions(t *testing.T) {
	ctx := context.Background()
	store, clk := newTestStore(t, newFakeAPI(t))
	clk.SetTime(t0.Add(time.Hour))
	f := confirmed(t, "worker-1")
	if err := store.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, f.Name)
	if err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(got.Status.Conditions, ConditionCompleted)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Confirmed" || !c.LastTransitionTime.Time.Equal(clk.Now().Truncate(time.Second)) ||
		c.ObservedGeneration != 1 || got.Status.ObservedGeneration != 1 {
		t.Fatalf("after Create: observedGeneration %d, Completed %+v", got.Status.ObservedGeneration, c)
	}
	got.Generation = 2 // as if the API had counted a spec change
	got.Status.Uncordoned = At(t0.Add(2 * time.Hour))
	if err := got.Status.Advance(PhaseCompleted); err != nil {
		t.Fatal(err)
	}
	if err := store.UpdateStatus(ctx, got); err != nil {
		t.Fatal(err)
	}
	again, err := store.Get(ctx, f.Name)
	if err != nil {
		t.Fatal(err)
	}
	c = meta.FindStatusCondition(again.Status.Conditions, ConditionCompleted)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != ReasonHandedBack || c.ObservedGeneration != 2 || again.Status.ObservedGeneration != 2 {
		t.Fatalf("after UpdateStatus: observedGeneration %d, Completed %+v", again.Status.ObservedGeneration, c)
	}
}

package record

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/haagent/haagent/internal/availability"
)

func TestAdvance(t *testing.T) {
	tests := []struct {
		name        string
		from        Phase
		outcome     Outcome
		to          Phase
		wantErr     error
		wantOutcome Outcome
	}{
		{name: "new record", from: "", to: PhaseConfirmed},
		{name: "next", from: PhaseConfirmed, to: PhaseCordoned},
		{name: "skip forward", from: PhaseEvicting, to: PhaseRecovering},
		{name: "same phase is a no-op", from: PhaseTainted, to: PhaseTainted},
		{name: "backwards", from: PhaseCordoned, to: PhaseConfirmed, wantErr: ErrPhaseOrder},
		{name: "far backwards", from: PhaseNodeReturned, to: PhaseEvicting, wantErr: ErrPhaseOrder},
		{name: "fail midway", from: PhaseAwaitingFence, to: PhaseFailed, wantOutcome: OutcomeFailed},
		{name: "past completed", from: PhaseCompleted, to: PhaseFailed, wantErr: ErrPhaseOrder, wantOutcome: OutcomeCompleted, outcome: OutcomeCompleted},
		{name: "past failed", from: PhaseFailed, to: PhaseCompleted, wantErr: ErrPhaseOrder, wantOutcome: OutcomeFailed, outcome: OutcomeFailed},
		{name: "unknown target", from: PhaseConfirmed, to: "Rebooting", wantErr: ErrUnknownPhase},
		{name: "unknown current", from: "Rebooting", to: PhaseCordoned, wantErr: ErrUnknownPhase},
		{name: "completed", from: PhaseNodeReturned, to: PhaseCompleted, wantOutcome: OutcomeCompleted},
		{name: "completed after pause", from: PhaseRecovered, outcome: OutcomePaused, to: PhaseCompleted, wantOutcome: OutcomeCompleted},
		{name: "completed dry run", from: PhaseConfirmed, outcome: OutcomeDryRun, to: PhaseCompleted, wantOutcome: OutcomeDryRun},
		{name: "aborted early", from: PhaseCordoned, to: PhaseAborted, wantOutcome: OutcomeAborted},
		{name: "aborted dry run", from: PhaseEvicting, outcome: OutcomeDryRun, to: PhaseAborted, wantOutcome: OutcomeDryRun},
		{name: "past aborted", from: PhaseAborted, to: PhaseFailed, wantErr: ErrPhaseOrder, wantOutcome: OutcomeAborted, outcome: OutcomeAborted},
		{name: "past completed to aborted", from: PhaseCompleted, to: PhaseAborted, wantErr: ErrPhaseOrder, wantOutcome: OutcomeCompleted, outcome: OutcomeCompleted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NodeFailoverStatus{Phase: tc.from, Outcome: tc.outcome}
			err := s.Advance(tc.to)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Advance(%q) from %q = %v, want %v", tc.to, tc.from, err, tc.wantErr)
			}
			wantPhase := tc.to
			if err != nil {
				wantPhase = tc.from
				var pe *PhaseError
				if !errors.As(err, &pe) || pe.From != tc.from || pe.To != tc.to {
					t.Errorf("error %v is not a *PhaseError from %q to %q", err, tc.from, tc.to)
				}
			}
			if s.Phase != wantPhase || s.Outcome != tc.wantOutcome {
				t.Errorf("after Advance: phase %q outcome %q, want %q %q", s.Phase, s.Outcome, wantPhase, tc.wantOutcome)
			}
		})
	}
}

func TestAdvance_everyPairFollowsTheOrder(t *testing.T) {
	phases := Phases()
	for i, from := range phases {
		for j, to := range phases {
			s := NodeFailoverStatus{Phase: from}
			err := s.Advance(to)
			allowed := i == j || (!from.Final() && j > i)
			if (err == nil) != allowed {
				t.Errorf("Advance %s → %s: err %v, allowed %v", from, to, err, allowed)
			}
		}
	}
	want := "record: cannot advance from phase \"Cordoned\" to \"Confirmed\": phases only move forward"
	s := NodeFailoverStatus{Phase: PhaseCordoned}
	if err := s.Advance(PhaseConfirmed); err == nil || err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestObjectName(t *testing.T) {
	at := time.Date(2026, 3, 1, 13, 4, 5, 999_000_000, time.FixedZone("CET", 3600))
	long := strings.Repeat("a", 250)
	tests := []struct {
		name string
		node string
		want string // "" to check only validity and length
	}{
		{name: "plain", node: "worker-1", want: "worker-1-20260301t120405"},
		{name: "fqdn", node: "ip-10-0-0-1.eu-west-1.compute.internal", want: "ip-10-0-0-1.eu-west-1.compute.internal-20260301t120405"},
		{name: "upper case", node: "Worker-1", want: "worker-1-20260301t120405"},
		{name: "invalid characters", node: "node_1:x", want: "node-1-x-" + shortHash("node_1:x") + "-20260301t120405"},
		{name: "empty parts", node: ".a..b-.", want: "a.b-" + shortHash(".a..b-.") + "-20260301t120405"},
		{name: "nothing usable", node: "___", want: "node-" + shortHash("___") + "-20260301t120405"},
		{name: "longest node name", node: long + ".bc"},
		{name: "cut at a dot", node: strings.Repeat("a", 225) + ".-b" + strings.Repeat("c", 30)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ObjectName(tc.node, at)
			if tc.want != "" && got != tc.want {
				t.Errorf("ObjectName(%q) = %q, want %q", tc.node, got, tc.want)
			}
			if len(got) > 253 {
				t.Errorf("ObjectName(%q) has %d characters", tc.node, len(got))
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("ObjectName(%q) = %q is not a DNS subdomain: %v", tc.node, got, errs)
			}
			if !strings.HasSuffix(got, "-20260301t120405") {
				t.Errorf("ObjectName(%q) = %q lost its UTC time suffix", tc.node, got)
			}
		})
	}
	a, b := ObjectName(long+"x", at), ObjectName(long+"y", at)
	if a == b {
		t.Errorf("long names that differ only at the end share the record name %q", a)
	}
}

func TestNodeLabelValue(t *testing.T) {
	long := strings.Repeat("n", 70)
	tests := []struct {
		node string
		want string
	}{
		{node: "worker-1", want: "worker-1"},
		{node: "ip-10-0-0-1.compute.internal", want: "ip-10-0-0-1.compute.internal"},
		{node: strings.Repeat("n", 63), want: strings.Repeat("n", 63)},
		{node: long, want: strings.Repeat("n", 52) + "-" + shortHash(long)},
		{node: strings.Repeat("n", 51) + ".." + "x" + strings.Repeat("m", 20)},
		{node: "-x-", want: "x-" + shortHash("-x-")},
		{node: "", want: ""},
	}
	for _, tc := range tests {
		got := NodeLabelValue(tc.node)
		if tc.want != "" && got != tc.want {
			t.Errorf("NodeLabelValue(%q) = %q, want %q", tc.node, got, tc.want)
		}
		if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
			t.Errorf("NodeLabelValue(%q) = %q: %v", tc.node, got, errs)
		}
	}
	if NodeLabelValue(long+"a") == NodeLabelValue(long+"b") {
		t.Error("long node names share a label value")
	}
}

func TestNewNodeFailover(t *testing.T) {
	f, err := NewNodeFailover("worker-1", strings.Repeat("é", 600), true, t0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "worker-1-20260301t120000" || f.APIVersion != "haagent.io/v1alpha1" || f.Kind != "NodeFailover" {
		t.Errorf("meta = %+v %+v", f.TypeMeta, f.ObjectMeta)
	}
	if len(f.Spec.Reason) != 1024 || !strings.HasSuffix(f.Spec.Reason, "é") {
		t.Errorf("reason cut to %d bytes, want 1024 on a rune boundary", len(f.Spec.Reason))
	}
	if f.Labels[LabelNode] != "worker-1" || f.Labels[LabelActive] != "true" {
		t.Errorf("labels = %v", f.Labels)
	}
	if _, err := NewNodeFailover("", "", false, t0); err == nil {
		t.Error("empty node accepted")
	}
	if _, err := NewNodeFailover("n", "", false, time.Time{}); err == nil {
		t.Error("zero start accepted")
	}
}

func TestSyncLabels(t *testing.T) {
	f := &NodeFailover{Spec: NodeFailoverSpec{Node: "worker-1"}}
	if !f.SyncLabels() || f.Labels[LabelActive] != "true" {
		t.Fatalf("new record: labels %v", f.Labels)
	}
	if f.SyncLabels() {
		t.Error("second SyncLabels reported a change")
	}
	f.Status.Phase = PhaseCompleted
	if !f.SyncLabels() {
		t.Error("Completed: no change reported")
	}
	if _, ok := f.Labels[LabelActive]; ok || f.Labels[LabelNode] != "worker-1" {
		t.Errorf("Completed: labels %v", f.Labels)
	}
}

func TestDerive(t *testing.T) {
	tests := []struct {
		name               string
		status             NodeFailoverStatus
		wantDetect, wantRe string
	}{
		{name: "nothing yet"},
		{name: "detected", status: NodeFailoverStatus{LastHeard: ms(0), Confirmed: ms(1234)}, wantDetect: "1.234s"},
		{
			name:       "repaired",
			status:     NodeFailoverStatus{LastHeard: ms(0), Confirmed: ms(850), WorkloadsRecovered: ms(63_100)},
			wantDetect: "850ms", wantRe: "1m3.1s",
		},
		{name: "no last heard", status: NodeFailoverStatus{Confirmed: ms(10), WorkloadsRecovered: ms(20)}},
		{name: "clock skew", status: NodeFailoverStatus{LastHeard: ms(500), Confirmed: ms(100)}},
		{name: "stale values cleared", status: NodeFailoverStatus{TimeToDetect: "9s", TimeToRepair: "9s"}},
		{
			name:       "aborted: the node's return ends the outage",
			status:     NodeFailoverStatus{Phase: PhaseAborted, LastHeard: ms(0), Confirmed: ms(900), NodeReturned: ms(4_500)},
			wantDetect: "900ms", wantRe: "4.5s",
		},
		{
			name: "superseded: the dead node's failover carries the outage on",
			status: NodeFailoverStatus{Phase: PhaseAborted, LastHeard: ms(0), Confirmed: ms(900), Conditions: []metav1.Condition{
				{Type: ConditionSuperseded, Status: metav1.ConditionTrue, Reason: "ConfirmedDead", LastTransitionTime: metav1.NewTime(t0.Add(40 * time.Second))}}},
			wantDetect: "900ms", wantRe: "40s",
		},
		{
			name:       "not aborted: the node's return is not a repair",
			status:     NodeFailoverStatus{Phase: PhaseNodeReturned, LastHeard: ms(0), Confirmed: ms(900), NodeReturned: ms(4_500)},
			wantDetect: "900ms",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.status
			s.Derive()
			if s.TimeToDetect != tc.wantDetect || s.TimeToRepair != tc.wantRe {
				t.Errorf("Derive: detect %q repair %q, want %q %q", s.TimeToDetect, s.TimeToRepair, tc.wantDetect, tc.wantRe)
			}
		})
	}
}

func TestToAvailability(t *testing.T) {
	f := confirmed(t, "worker-1")
	f.Status.WorkloadsRecovered = ms(9000)
	got := f.ToAvailability()
	want := availability.Failover{Node: "worker-1", LastHeard: t0, Confirmed: t0.Add(1500 * time.Millisecond), Recovered: t0.Add(9 * time.Second)}
	if got.Node != want.Node || !got.LastHeard.Equal(want.LastHeard) || !got.Confirmed.Equal(want.Confirmed) || !got.Recovered.Equal(want.Recovered) {
		t.Errorf("ToAvailability = %+v, want %+v", got, want)
	}
	if d, ok := availability.TimeToRepair(got); !ok || d != 9*time.Second {
		t.Errorf("TimeToRepair = %v %v", d, ok)
	}
	empty := (&NodeFailover{Spec: NodeFailoverSpec{Node: "x"}}).ToAvailability()
	if !empty.LastHeard.IsZero() || !empty.Recovered.IsZero() {
		t.Errorf("missing timestamps = %+v, want zero times", empty)
	}
}

// TestSupersede: a drain superseded by the failover of the dead node ends
// Aborted, saying so, and its outage ends then, not never.
func TestSupersede(t *testing.T) {
	f := confirmed(t, "worker-1")
	if err := f.Status.Advance(PhaseEvicting); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(30 * time.Second)
	if err := f.Status.Supersede(at, "superseded"); err != nil {
		t.Fatal(err)
	}
	if st := f.Status; st.Phase != PhaseAborted || st.Outcome != OutcomeAborted || st.Message != "superseded" || len(st.Conditions) != 1 {
		t.Fatalf("status = %+v", st)
	}
	if got := f.ToAvailability().Recovered; !got.Equal(at) {
		t.Errorf("outage ends at %s, want %s", got, at)
	}
	if err := f.Status.Supersede(at, "again"); !errors.Is(err, ErrPhaseOrder) {
		t.Errorf("Supersede of an ended record = %v, want ErrPhaseOrder", err)
	}
}

func TestMerge(t *testing.T) {
	cond := func(typ, status string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: "R", LastTransitionTime: metav1.NewTime(t0)}
	}
	stored := NodeFailoverStatus{
		Phase: PhaseTainted, Message: "tainted", LastHeard: ms(0), Confirmed: ms(1500), Cordoned: ms(1600), Tainted: ms(1700),
		Votes:      []Vote{{Voter: "a", Opinion: OpinionDead, At: *ms(1)}, {Voter: "b", Opinion: OpinionSuspect, At: *ms(2)}},
		Pods:       PodCounts{Total: 3},
		Conditions: []metav1.Condition{cond("Paused", "False")},
	}
	mine := NodeFailoverStatus{
		Phase: PhaseCordoned, Message: "cordoned", LastHeard: ms(0), Confirmed: ms(1500), Cordoned: ms(1650), Suspected: ms(600),
		Votes:      []Vote{{Voter: "b", Opinion: OpinionDead, At: *ms(3)}, {Voter: "c", Opinion: OpinionDead, At: *ms(4)}},
		Pods:       PodCounts{Total: 3, Evicted: 1},
		Conditions: []metav1.Condition{cond("Paused", "True"), cond("Fenced", "False")},
	}

	got := stored.DeepCopy()
	got.Merge(&mine)
	if got.Phase != PhaseTainted || got.Message != "tainted" || got.Pods.Evicted != 0 {
		t.Errorf("the status further along lost: phase %s message %q pods %+v", got.Phase, got.Message, got.Pods)
	}
	if !got.Cordoned.Equal(ms(1600)) || !got.Suspected.Equal(ms(600)) || !got.Tainted.Equal(ms(1700)) {
		t.Errorf("timestamps: cordoned %v suspected %v tainted %v; want the earliest of each", got.Cordoned, got.Suspected, got.Tainted)
	}
	if len(got.Votes) != 3 || got.Votes[1].Opinion != OpinionDead {
		t.Errorf("votes = %+v", got.Votes)
	}
	if len(got.Conditions) != 2 || got.Conditions[0].Status != "True" {
		t.Errorf("conditions = %+v", got.Conditions)
	}
	if got.TimeToDetect != "1.5s" {
		t.Errorf("durations not derived: %q", got.TimeToDetect)
	}
	if stored.Votes[1].Opinion != OpinionSuspect || stored.Conditions[0].Status != "False" {
		t.Error("Merge wrote through to the copy's source")
	}

	// The other way round the phase and timestamps agree; the counts follow
	// the phase.
	other := mine.DeepCopy()
	other.Merge(&stored)
	if other.Phase != PhaseTainted || other.Message != "tainted" || !other.Cordoned.Equal(ms(1600)) {
		t.Errorf("reverse merge: %+v", other)
	}

	// From a final phase nothing moves back, and an outcome stays.
	final := NodeFailoverStatus{Phase: PhaseFailed, Outcome: OutcomeFailed}
	final.Merge(&NodeFailoverStatus{Phase: PhaseRecovered})
	if final.Phase != PhaseFailed || final.Outcome != OutcomeFailed {
		t.Errorf("merge into Failed: %+v", final)
	}
	final.Merge(nil)
}

// TestRoundTrip_subSecond is why the timestamps are MicroTime: a record
// written and read back keeps milliseconds (microseconds, in fact), where
// metav1.Time would keep whole seconds.
func TestRoundTrip_subSecond(t *testing.T) {
	f := confirmed(t, "worker-1")
	f.Status.Cordoned = At(t0.Add(1623456789 * time.Nanosecond))
	f.Status.Derive()

	u, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	status := u.Object["status"].(map[string]any)
	if got, want := status["cordoned"], "2026-03-01T12:00:01.873456Z"; got != want {
		t.Errorf("cordoned serialized as %v, want %v", got, want)
	}
	back, err := decode(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Status.Confirmed.Sub(back.Status.LastHeard.Time); got != 1500*time.Millisecond {
		t.Errorf("confirmed − lastHeard after a round trip = %v, want 1.5s", got)
	}
	if want := t0.Add(1623456 * time.Microsecond); !back.Status.Cordoned.Time.Equal(want) {
		t.Errorf("cordoned after a round trip = %v, want %v (truncated to the microsecond)", back.Status.Cordoned.Time, want)
	}

	// Through JSON, as the API server stores it, too.
	raw, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON NodeFailover
	if err := json.Unmarshal(raw, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !fromJSON.Status.Confirmed.Equal(f.Status.Confirmed) {
		t.Errorf("JSON round trip: %v, want %v", fromJSON.Status.Confirmed, f.Status.Confirmed)
	}

	// The contrast: metav1.Time drops the fraction.
	var sec struct {
		T metav1.Time `json:"t"`
	}
	sec.T = metav1.NewTime(t0.Add(1500 * time.Millisecond))
	raw, _ = json.Marshal(sec)
	_ = json.Unmarshal(raw, &sec)
	if sec.T.Sub(t0) == 1500*time.Millisecond {
		t.Error("metav1.Time kept milliseconds; the choice of MicroTime is no longer needed")
	}
}

func TestDeepCopy(t *testing.T) {
	f := confirmed(t, "worker-1")
	f.Status.AffectedOwners = []AffectedOwner{{Kind: "StatefulSet", Namespace: "db", Name: "pg", DesiredReplicas: 3}}
	f.Status.Conditions = []metav1.Condition{{Type: "Paused", Status: "False", Reason: "R", LastTransitionTime: metav1.NewTime(t0)}}
	c := f.DeepCopy()
	if !apiequality.Semantic.DeepEqual(f, c) {
		t.Fatal("copy differs")
	}
	c.Status.LastHeard.Time = t0.Add(time.Hour)
	c.Status.Votes[0].Voter = "x"
	c.Status.AffectedOwners[0].Name = "x"
	c.Status.Conditions[0].Type = "x"
	c.Labels["x"] = "y"
	if !f.Status.LastHeard.Time.Equal(t0) || f.Status.Votes[0].Voter == "x" || f.Status.AffectedOwners[0].Name == "x" ||
		f.Status.Conditions[0].Type == "x" || f.Labels["x"] == "y" {
		t.Error("copy shares memory with the original")
	}
	if (*NodeFailover)(nil).DeepCopy() != nil {
		t.Error("nil copy")
	}
}

package record

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// randomRecord builds a record from r with every field set or not at random.
// Times are whole microseconds and between the years 1970 and 2200, which is
// what MicroTime can carry; condition times are whole seconds (metav1.Time).
func randomRecord(r *rand.Rand) *NodeFailover {
	str := func(n int) string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789-.é 世:"
		rs := []rune(chars)
		out := make([]rune, r.IntN(n+1))
		for i := range out {
			out[i] = rs[r.IntN(len(rs))]
		}
		return string(out)
	}
	when := func() time.Time {
		return time.UnixMicro(r.Int64N(7_258_118_400_000_000)).In(time.FixedZone("z", (r.IntN(49)-24)*1800))
	}
	ts := func() *metav1.MicroTime {
		if r.IntN(3) == 0 {
			return nil
		}
		return At(when())
	}
	phases := Phases()
	outcomes := []Outcome{OutcomeNone, OutcomeCompleted, OutcomeFailed, OutcomePaused, OutcomeDryRun, OutcomeAborted}
	opinions := []Opinion{OpinionAlive, OpinionSuspect, OpinionDead, OpinionAgentDown}

	f := &NodeFailover{
		TypeMeta: metav1.TypeMeta{APIVersion: Group + "/" + Version, Kind: Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:              str(20),
			UID:               types.UID(str(8)),
			ResourceVersion:   str(5),
			CreationTimestamp: metav1.NewTime(when().Truncate(time.Second)),
		},
		Spec: NodeFailoverSpec{Node: str(30), DryRun: r.IntN(2) == 0, Reason: str(40)},
	}
	if r.IntN(2) == 0 {
		f.Labels = map[string]string{LabelNode: str(10)}
	}
	s := &f.Status
	s.Phase = phases[r.IntN(len(phases))]
	s.Outcome = outcomes[r.IntN(len(outcomes))]
	s.Message = str(60)
	for _, p := range s.timestamps() {
		*p = ts()
	}
	for range r.IntN(4) {
		s.Votes = append(s.Votes, Vote{Voter: str(10), Opinion: opinions[r.IntN(len(opinions))], At: metav1.NewMicroTime(when())})
	}
	n := func() int32 { return r.Int32N(1000) * int32(r.IntN(2)) }
	s.Pods = PodCounts{Total: n(), Evicted: n(), PDBBlocked: n(), FencedOnly: n(), Gone: n(), Failed: n()}
	for range r.IntN(3) {
		s.AffectedOwners = append(s.AffectedOwners, AffectedOwner{Kind: "StatefulSet", Namespace: str(8), Name: str(8), DesiredReplicas: n()})
	}
	s.ObservedGeneration = int64(n())
	for range r.IntN(3) {
		s.Conditions = append(s.Conditions, metav1.Condition{
			Type: str(8), Status: metav1.ConditionUnknown, ObservedGeneration: int64(n()),
			LastTransitionTime: metav1.NewTime(when().Truncate(time.Second)), Reason: str(8), Message: str(20),
		})
	}
	s.Derive()
	return f
}

// FuzzUnstructuredRoundTrip checks that a record survives the conversions
// between the Store and the API: to unstructured and back, and through JSON.
func FuzzUnstructuredRoundTrip(f *testing.F) {
	for seed := range uint64(64) {
		f.Add(seed, seed*0x9e3779b97f4a7c15)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		want := randomRecord(rand.New(rand.NewPCG(a, b)))

		u, err := encode(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(u)
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(want, got) {
			t.Fatalf("unstructured round trip changed the record:\nwant %+v\ngot  %+v", want, got)
		}

		raw, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON NodeFailover
		if err := json.Unmarshal(raw, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(want, &viaJSON) {
			t.Fatalf("JSON round trip changed the record:\nwant %+v\ngot  %+v", want, &viaJSON)
		}
	})
}

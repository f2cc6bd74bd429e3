package failover

import (
	"testing"
	"time"
)

func TestDecider_ConfirmedDead(t *testing.T) {
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	members := func(n3 State) []Member {
		return []Member{{Name: "n1", State: StateAlive}, {Name: "n2", State: StateAlive},
			{Name: "n3", State: n3}, {Name: "n4", State: StateAlive}, {Name: "n5", State: StateAlive}}
	}
	ballots := func(voters ...string) *Ballots {
		b := NewBallots()
		for i, v := range voters {
			b.Add(Vote{Voter: v, Target: "n3", Opinion: OpinionDead, Seq: uint64(i + 1), At: now}, now)
		}
		return b
	}
	d, err := NewDecider(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		state  State
		voters []string
		want   bool
	}{
		{"dead, 3 of 5 vote dead", StateDead, []string{"n1", "n2", "n4"}, true},
		{"dead, 2 of 5 vote dead", StateDead, []string{"n1", "n2"}, false},
		{"suspect, 3 of 5 vote dead", StateSuspect, []string{"n1", "n2", "n4"}, false},
		{"alive", StateAlive, []string{"n1", "n2", "n4"}, false},
	} {
		tally, got := d.ConfirmedDead(Input{Now: now, Members: members(tc.state), Ballots: ballots(tc.voters...)}, "n3")
		if got != tc.want {
			t.Errorf("%s: ConfirmedDead = %v (%s), want %v", tc.name, got, tally, tc.want)
		}
	}
	if _, got := d.ConfirmedDead(Input{Now: now, Members: members(StateDead), Ballots: ballots("n1", "n2", "n4")}, "n9"); got {
		t.Error("ConfirmedDead of a name that is no member = true")
	}
	// Votes older than VoteMaxAge do not count.
	late := now.Add(DefaultConfig().VoteMaxAge + time.Second)
	if _, got := d.ConfirmedDead(Input{Now: late, Members: members(StateDead), Ballots: ballots("n1", "n2", "n4")}, "n3"); got {
		t.Error("ConfirmedDead counted votes older than VoteMaxAge")
	}
}

package failover

import (
	"testing"
	"time"
)

// TestDecide_holdPaused: a hold says whether a pause of automatic failover
// made it (operator, dead fraction of the cluster or of a zone) or a guard
// about the node alone (opt-out, rate limit).
func TestDecide_holdPaused(t *testing.T) {
	now := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	members := func() []Member {
		var ms []Member
		for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
			ms = append(ms, Member{Name: n, State: StateAlive, Zone: "a"})
		}
		ms[2].State = StateDead
		return ms
	}
	ballots := NewBallots()
	for i, v := range []string{"n1", "n2", "n4"} {
		ballots.Add(Vote{Voter: v, Target: "n3", Opinion: OpinionDead, Seq: uint64(i + 1), At: now}, now)
	}
	for _, tc := range []struct {
		name   string
		cfg    func(*Config)
		input  func(*Input)
		paused bool
	}{
		{name: "operator", input: func(in *Input) { in.Paused = true }, paused: true},
		{name: "dead fraction", cfg: func(c *Config) { c.MaxDeadFraction = 0.1 }, paused: true},
		{name: "opted out", input: func(in *Input) { in.Members[2].OptOut = true }},
		{name: "rate limit", cfg: func(c *Config) { c.Burst = 1 }, input: func(in *Input) { in.Active = map[string]bool{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d, err := NewDecider(cfg)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{Now: now, Members: members(), Ballots: ballots}
			if tc.name == "rate limit" {
				// The one token goes to a first failover.
				if got, _ := d.Decide(in); len(got) != 1 || got[0].Action != ActionStart {
					t.Fatalf("first decision = %v, want a start", got)
				}
			}
			if tc.input != nil {
				tc.input(&in)
			}
			got, _ := d.Decide(in)
			if len(got) != 1 || got[0].Action != ActionHold || got[0].Paused != tc.paused {
				t.Fatalf("decisions = %+v, want one hold with Paused %v", got, tc.paused)
			}
		})
	}
}

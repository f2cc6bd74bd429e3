package failover

import (
	"strings"
	"testing"
	"time"
)

func TestVote_roundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	cases := []Vote{
		{Voter: "a", Target: "b", Opinion: OpinionAlive},
		{Voter: "node-1", Target: "node-7", Opinion: OpinionDead, VoterEpoch: 1764220000000000000, Seq: 42,
			TargetEpoch: -3, LastAck: at.Add(-time.Second), At: at},
		{Voter: strings.Repeat("v", 253), Target: strings.Repeat("t", 253), Opinion: OpinionAgentDown, Seq: 1<<64 - 1},
	}
	for _, want := range cases {
		b := want.Encode()
		if len(b) > MaxVoteBytes {
			t.Fatalf("encoded vote is %d bytes, more than MaxVoteBytes", len(b))
		}
		got, err := DecodeVote(b)
		if err != nil {
			t.Fatalf("DecodeVote: %v", err)
		}
		if got != want {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func TestDecodeVote_errors(t *testing.T) {
	good := Vote{Voter: "a", Target: "b", Opinion: OpinionDead}.Encode()
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "failover: vote is truncated"},
		{"version 0", []byte{0, 3}, "failover: vote version 0 is not supported"},
		{"unknown opinion", []byte{1, 9}, "failover: vote opinion 9 is unknown"},
		{"empty voter", []byte{1, 3, 0}, "failover: vote voter name is malformed"},
		{"truncated target", good[:5], "failover: vote target name is malformed"},
		{"truncated numbers", good[:len(good)-1], "failover: vote numbers are truncated"},
		{"too long", make([]byte, MaxVoteBytes+1), "failover: vote is 571 bytes, more than 570"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeVote(tc.in); err == nil || err.Error() != tc.want {
				t.Fatalf("DecodeVote() error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBallots_keepNewest(t *testing.T) {
	b := NewBallots()
	t0 := time.Unix(1000, 0)
	v1 := Vote{Voter: "a", Target: "x", Opinion: OpinionDead, VoterEpoch: 1, Seq: 2}
	if !b.Add(v1, t0) {
		t.Fatal("first vote not fresh")
	}
	older := v1
	older.Seq, older.Opinion = 1, OpinionAlive
	if b.Add(older, t0) {
		t.Fatal("an older vote replaced a newer one")
	}
	// A repeat keeps the vote current.
	if b.Add(v1, t0.Add(time.Minute)) {
		t.Fatal("a repeated vote was reported fresh")
	}
	if got := b.about("x", t0.Add(30*time.Second)); len(got) != 1 || got[0].Opinion != OpinionDead {
		t.Fatalf("about = %+v", got)
	}
	restarted := Vote{Voter: "a", Target: "x", Opinion: OpinionAlive, VoterEpoch: 2, Seq: 1}
	if !b.Add(restarted, t0) {
		t.Fatal("a vote from the voter's new epoch was not fresh")
	}
	b.Forget("x")
	if got := b.about("x", time.Time{}); len(got) != 0 {
		t.Fatalf("Forget left %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(*Config) {}, ""},
		{func(c *Config) { c.VoteMaxAge = 0 }, "failover: --vote-max-age (0s) must be between 1s and 5m0s"},
		{func(c *Config) { c.MaxDeadFraction = 0 }, "failover: --max-dead-fraction (0) must be greater than 0 and at most 1"},
		{func(c *Config) { c.MaxDeadFraction = 1.5 }, "failover: --max-dead-fraction (1.5) must be greater than 0 and at most 1"},
		{func(c *Config) { c.ZoneMinNodes = 0 }, "failover: --zone-min-nodes (0) must be at least 1"},
		{func(c *Config) { c.Burst = 0 }, "failover: --failover-burst (0) must be between 1 and 100"},
		{func(c *Config) { c.Interval = time.Millisecond }, "failover: --failover-interval (1ms) must be at least 1s"},
	}
	for _, tc := range cases {
		c := DefaultConfig()
		tc.mod(&c)
		got := ""
		if err := c.Validate(); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Validate() = %q, want %q", got, tc.want)
		}
	}
}

func FuzzDecodeVote(f *testing.F) {
	f.Add(Vote{Voter: "a", Target: "b", Opinion: OpinionDead, Seq: 7, At: time.UnixMilli(5)}.Encode())
	f.Add([]byte{1, 3, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVote(b)
		if err != nil {
			return
		}
		again, err := DecodeVote(v.Encode())
		if err != nil || again != v {
			t.Fatalf("re-decode of %+v = %+v, %v", v, again, err)
		}
	})
}

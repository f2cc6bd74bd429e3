package failover

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"
	"unicode/utf8"
)

// Opinion is what one agent thinks of one node.
type Opinion uint8

const (
	// OpinionAlive: the member answers on gossip.
	OpinionAlive Opinion = 1
	// OpinionSuspect: the member missed probes and may be dead.
	OpinionSuspect Opinion = 2
	// OpinionDead: gossip declared the member dead and its kubelet port
	// does not answer either.
	OpinionDead Opinion = 3
	// OpinionAgentDown: gossip declared the member dead but its kubelet
	// answers: the agent died, the node lives. Never a reason to fail over.
	OpinionAgentDown Opinion = 4
)

var opinionNames = map[Opinion]string{
	OpinionAlive: "alive", OpinionSuspect: "suspect", OpinionDead: "dead", OpinionAgentDown: "agent-down",
}

func (o Opinion) String() string {
	if n, ok := opinionNames[o]; ok {
		return n
	}
	return fmt.Sprintf("Opinion(%d)", uint8(o))
}

// ParseOpinion parses an opinion name.
func ParseOpinion(s string) (Opinion, error) {
	for o, n := range opinionNames {
		if n == s {
			return o, nil
		}
	}
	return 0, fmt.Errorf("failover: unknown opinion %q", s)
}

// Vote is one agent's opinion of one node, as gossiped.
type Vote struct {
	// Voter and Target are member (Node) names.
	Voter  string
	Target string
	// Opinion is the voter's view of the target.
	Opinion Opinion
	// VoterEpoch is the voter agent's start epoch; with Seq it orders a
	// voter's votes, also across its restarts.
	VoterEpoch int64
	// Seq increases with every vote the voter sends in one epoch.
	Seq uint64
	// TargetEpoch is the start epoch of the target agent the opinion is
	// about, so a vote about a previous life of the target does not count
	// against its new one. 0 if unknown.
	TargetEpoch int64
	// LastAck is when the voter last heard the target answer a probe
	// (zero if never). The latest over all voters is the failover's
	// "last heard from".
	LastAck time.Time
	// At is when the voter formed the opinion, by the voter's clock.
	At time.Time
}

// Newer reports whether v supersedes old (same voter and target).
func (v Vote) Newer(old Vote) bool {
	if v.VoterEpoch != old.VoterEpoch {
		return v.VoterEpoch > old.VoterEpoch
	}
	return v.Seq > old.Seq
}

const (
	voteVersion  = 1
	maxNameBytes = 253
	// MaxVoteBytes bounds an encoded vote; anything longer is malformed.
	MaxVoteBytes = 2*maxNameBytes + 64
)

// Encode returns the wire form: version, opinion, the two names with
// length prefixes, then the numbers as varints. Times are Unix
// milliseconds (0 for zero).
func (v Vote) Encode() []byte {
	b := make([]byte, 0, 48+len(v.Voter)+len(v.Target))
	b = append(b, voteVersion, byte(v.Opinion))
	b = binary.AppendUvarint(b, uint64(len(v.Voter)))
	b = append(b, v.Voter...)
	b = binary.AppendUvarint(b, uint64(len(v.Target)))
	b = append(b, v.Target...)
	b = binary.AppendVarint(b, v.VoterEpoch)
	b = binary.AppendUvarint(b, v.Seq)
	b = binary.AppendVarint(b, v.TargetEpoch)
	b = binary.AppendVarint(b, unixMilli(v.LastAck))
	b = binary.AppendVarint(b, unixMilli(v.At))
	return b
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// DecodeVote parses a vote from a peer. Malformed input is an error, never
// a panic. Versions above 1 are read with the version-1 layout: later
// versions may only append fields.
func DecodeVote(b []byte) (Vote, error) {
	var v Vote
	if len(b) > MaxVoteBytes {
		return v, fmt.Errorf("failover: vote is %d bytes, more than %d", len(b), MaxVoteBytes)
	}
	if len(b) < 2 {
		return v, errors.New("failover: vote is truncated")
	}
	if b[0] < 1 {
		return v, fmt.Errorf("failover: vote version %d is not supported", b[0])
	}
	v.Opinion = Opinion(b[1])
	if _, ok := opinionNames[v.Opinion]; !ok {
		return Vote{}, fmt.Errorf("failover: vote opinion %d is unknown", b[1])
	}
	rest := b[2:]
	var err error
	if v.Voter, rest, err = decodeName(rest, "vote", "voter"); err != nil {
		return Vote{}, err
	}
	if v.Target, rest, err = decodeName(rest, "vote", "target"); err != nil {
		return Vote{}, err
	}
	var ints [5]int64
	for i := range ints {
		var n int
		if i == 1 {
			var u uint64
			u, n = binary.Uvarint(rest)
			ints[i] = int64(u)
		} else {
			ints[i], n = binary.Varint(rest)
		}
		if n <= 0 {
			return Vote{}, errors.New("failover: vote numbers are truncated")
		}
		rest = rest[n:]
	}
	v.VoterEpoch, v.Seq, v.TargetEpoch = ints[0], uint64(ints[1]), ints[2]
	v.LastAck, v.At = fromMilli(ints[3]), fromMilli(ints[4])
	return v, nil
}

// decodeName reads a length-prefixed member name from the front of b and
// returns it and what follows; msg and field name the message and the field
// in the error.
func decodeName(b []byte, msg, field string) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l == 0 || l > maxNameBytes || l > uint64(len(b)-n) {
		return "", nil, fmt.Errorf("failover: %s %s name is malformed", msg, field)
	}
	s := b[n : n+int(l)]
	if !utf8.Valid(s) {
		return "", nil, fmt.Errorf("failover: %s %s name is not UTF-8", msg, field)
	}
	return string(s), b[n+int(l):], nil
}

// Ballots keeps the newest vote of each voter about each target, with the
// time it was received here (by the local clock, which is what vote
// freshness is judged by: voters' clocks may be skewed).
type Ballots struct {
	votes map[[2]string]received
}

type received struct {
	Vote
	At time.Time
}

// NewBallots returns an empty ballot box.
func NewBallots() *Ballots { return &Ballots{votes: map[[2]string]received{}} }

// Add records v if it is newer than what the box holds for its voter and
// target, and reports whether it was.
func (b *Ballots) Add(v Vote, now time.Time) bool {
	k := [2]string{v.Voter, v.Target}
	if old, ok := b.votes[k]; ok && !v.Newer(old.Vote) {
		if v.VoterEpoch == old.VoterEpoch && v.Seq == old.Seq {
			// The same vote again (gossip repeats): it is still current.
			old.At = now
			b.votes[k] = old
		}
		return false
	}
	b.votes[k] = received{Vote: v, At: now}
	return true
}

// Forget drops every vote by or about a member, when it leaves.
func (b *Ballots) Forget(name string) {
	for k := range b.votes {
		if k[0] == name || k[1] == name {
			delete(b.votes, k)
		}
	}
}

// about returns the votes about target received since notBefore.
func (b *Ballots) about(target string, notBefore time.Time) []Vote {
	var out []Vote
	for k, r := range b.votes {
		if k[1] == target && !r.At.Before(notBefore) {
			out = append(out, r.Vote)
		}
	}
	return out
}

// Votes returns the newest vote of each voter about target, sorted by
// voter, whatever their age.
func (b *Ballots) Votes(target string) []Vote {
	out := b.about(target, time.Time{})
	sort.Slice(out, func(i, j int) bool { return out[i].Voter < out[j].Voter })
	return out
}

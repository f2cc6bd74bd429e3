package failover

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Notice is a coordinator's word to the group that the failover of Target
// is under way: the decision is made and recorded, and no vote about
// Target is read again until it ends. Voters stop repeating their dead
// votes about Target while they hear it, which keeps the traffic of a
// long-dead node from growing with the square of the group.
//
// A notice can only make voters quieter, never make anyone act: a forged
// or stale one delays a failover by at most the time it is believed, it
// cannot start one.
type Notice struct {
	// Coordinator and Target are member (Node) names.
	Coordinator string
	Target      string
	// TargetEpoch is the start epoch of the target agent the failover is
	// about; a notice about a previous life of the target does not silence
	// votes about its new one. 0 if unknown.
	TargetEpoch int64
	// CoordinatorEpoch and Seq order one coordinator's notices, as a
	// voter's epoch and sequence order its votes.
	CoordinatorEpoch int64
	Seq              uint64
}

// Newer reports whether n supersedes old, from the same coordinator.
func (n Notice) Newer(old Notice) bool {
	if n.CoordinatorEpoch != old.CoordinatorEpoch {
		return n.CoordinatorEpoch > old.CoordinatorEpoch
	}
	return n.Seq > old.Seq
}

const (
	noticeVersion = 1
	// MaxNoticeBytes bounds an encoded notice; anything longer is
	// malformed.
	MaxNoticeBytes = 2*maxNameBytes + 48
)

// Encode returns the wire form: version, the two names with length
// prefixes, then the numbers as varints.
func (n Notice) Encode() []byte {
	b := make([]byte, 0, 32+len(n.Coordinator)+len(n.Target))
	b = append(b, noticeVersion)
	b = binary.AppendUvarint(b, uint64(len(n.Coordinator)))
	b = append(b, n.Coordinator...)
	b = binary.AppendUvarint(b, uint64(len(n.Target)))
	b = append(b, n.Target...)
	b = binary.AppendVarint(b, n.TargetEpoch)
	b = binary.AppendVarint(b, n.CoordinatorEpoch)
	b = binary.AppendUvarint(b, n.Seq)
	return b
}

// DecodeNotice parses a notice from a peer. Malformed input is an error,
// never a panic. Versions above 1 are read with the version-1 layout: later
// versions may only append fields.
func DecodeNotice(b []byte) (Notice, error) {
	var n Notice
	if len(b) > MaxNoticeBytes {
		return n, fmt.Errorf("failover: notice is %d bytes, more than %d", len(b), MaxNoticeBytes)
	}
	if len(b) < 1 {
		return n, errors.New("failover: notice is truncated")
	}
	if b[0] < 1 {
		return n, fmt.Errorf("failover: notice version %d is not supported", b[0])
	}
	rest := b[1:]
	var err error
	if n.Coordinator, rest, err = decodeName(rest, "notice", "coordinator"); err != nil {
		return Notice{}, err
	}
	if n.Target, rest, err = decodeName(rest, "notice", "target"); err != nil {
		return Notice{}, err
	}
	var k int
	if n.TargetEpoch, k = binary.Varint(rest); k <= 0 {
		return Notice{}, errors.New("failover: notice numbers are truncated")
	}
	rest = rest[k:]
	if n.CoordinatorEpoch, k = binary.Varint(rest); k <= 0 {
		return Notice{}, errors.New("failover: notice numbers are truncated")
	}
	rest = rest[k:]
	if n.Seq, k = binary.Uvarint(rest); k <= 0 {
		return Notice{}, errors.New("failover: notice numbers are truncated")
	}
	return n, nil
}

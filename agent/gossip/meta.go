package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// MetaMaxBytes is memberlist's limit on node metadata.
const MetaMaxBytes = 512

// metaVersion is the version written by this agent. A decoder accepts any
// version from 1 on and reads the version-1 layout: later versions may only
// append fields, so old agents keep understanding new ones during a rollout.
const metaVersion = 1

// MaxReasonBytes bounds the readiness reason carried in metadata; longer
// reasons are cut (on a UTF-8 boundary) when published.
const MaxReasonBytes = 100

// Meta is what a member tells the others about itself, carried in
// memberlist's node metadata.
type Meta struct {
	// NodeName is the Kubernetes Node the agent runs on.
	NodeName string `json:"nodeName"`
	// Zone is the node's topology zone.
	Zone string `json:"zone,omitempty"`
	// AgentVersion is the haagent version of the member.
	AgentVersion string `json:"agentVersion,omitempty"`
	// Ready is the agent's verdict about its own node.
	Ready bool `json:"ready"`
	// Reason names the failing check when not ready.
	Reason string `json:"reason,omitempty"`
	// Leaving is set just before a graceful leave, so peers record "left"
	// rather than "dead".
	Leaving bool `json:"leaving,omitempty"`
	// StartEpoch is the agent's start time in Unix nanoseconds; a new value
	// under the same name means the agent restarted.
	StartEpoch int64 `json:"startEpoch"`
	// Coordinator is set while the agent holds the coordinator Lease, so
	// that agents that do not campaign know where to send their votes
	// without reading the Lease.
	Coordinator bool `json:"coordinator,omitempty"`
}

const (
	metaFlagReady   = 1 << 0
	metaFlagLeaving = 1 << 1
	// metaFlagCoordinator is ignored by agents that predate it.
	metaFlagCoordinator = 1 << 2
)

// ErrMetaTooLarge is returned when encoded metadata would exceed
// MetaMaxBytes.
var ErrMetaTooLarge = errors.New("gossip: metadata exceeds 512 bytes")

// Encode returns the wire form: version, flags, start epoch, then the
// strings, each with a length prefix.
func (m Meta) Encode() ([]byte, error) {
	buf := make([]byte, 0, 64+len(m.NodeName)+len(m.Zone)+len(m.AgentVersion)+len(m.Reason))
	buf = append(buf, metaVersion)
	var flags byte
	if m.Ready {
		flags |= metaFlagReady
	}
	if m.Leaving {
		flags |= metaFlagLeaving
	}
	if m.Coordinator {
		flags |= metaFlagCoordinator
	}
	buf = append(buf, flags)
	buf = binary.AppendVarint(buf, m.StartEpoch)
	for _, s := range []string{m.NodeName, m.Zone, m.AgentVersion, m.Reason} {
		if len(s) > 255 {
			return nil, fmt.Errorf("gossip: metadata string of %d bytes exceeds 255", len(s))
		}
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	if len(buf) > MetaMaxBytes {
		return nil, ErrMetaTooLarge
	}
	return buf, nil
}

// DecodeMeta parses metadata from a peer. It never panics: any malformed
// input is an error, which the caller counts and ignores.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return m, errors.New("gossip: metadata is empty")
	}
	if len(b) > MetaMaxBytes {
		return m, fmt.Errorf("gossip: metadata is %d bytes, more than %d", len(b), MetaMaxBytes)
	}
	if b[0] < 1 {
		return m, fmt.Errorf("gossip: metadata version %d is not supported", b[0])
	}
	if len(b) < 2 {
		return m, errors.New("gossip: metadata truncated before flags")
	}
	flags := b[1]
	m.Ready = flags&metaFlagReady != 0
	m.Leaving = flags&metaFlagLeaving != 0
	m.Coordinator = flags&metaFlagCoordinator != 0
	rest := b[2:]
	epoch, n := binary.Varint(rest)
	if n <= 0 {
		return m, errors.New("gossip: metadata start epoch is malformed")
	}
	m.StartEpoch = epoch
	rest = rest[n:]
	fields := []*string{&m.NodeName, &m.Zone, &m.AgentVersion, &m.Reason}
	names := []string{"node name", "zone", "agent version", "reason"}
	for i, f := range fields {
		l, n := binary.Uvarint(rest)
		if n <= 0 {
			return Meta{}, fmt.Errorf("gossip: metadata %s length is malformed", names[i])
		}
		rest = rest[n:]
		if l > uint64(len(rest)) {
			return Meta{}, fmt.Errorf("gossip: metadata %s is truncated", names[i])
		}
		s := rest[:l]
		if !utf8.Valid(s) {
			return Meta{}, fmt.Errorf("gossip: metadata %s is not UTF-8", names[i])
		}
		*f = string(s)
		rest = rest[l:]
	}
	if m.NodeName == "" {
		return Meta{}, errors.New("gossip: metadata has no node name")
	}
	return m, nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// SetReadiness publishes this node's readiness verdict to the group. The
// reason (the failing check) is cut to MaxReasonBytes. It must not be called
// from a membership event handler that runs on memberlist's goroutines.
func (m *Membership) SetReadiness(ready bool, reason string) error {
	if ready {
		reason = ""
	}
	reason = truncateUTF8(reason, MaxReasonBytes)
	m.mu.Lock()
	changed := m.local.Ready != ready || m.local.Reason != reason
	m.local.Ready, m.local.Reason = ready, reason
	m.mu.Unlock()
	if !changed {
		return nil
	}
	return m.publishMeta()
}

// SetCoordinator publishes whether this agent holds the coordinator Lease.
// Like SetReadiness, it must not be called from a membership event handler.
func (m *Membership) SetCoordinator(holding bool) error {
	m.mu.Lock()
	changed := m.local.Coordinator != holding
	m.local.Coordinator = holding
	m.mu.Unlock()
	if !changed {
		return nil
	}
	return m.publishMeta()
}

func (m *Membership) publishMeta() error {
	m.publishMu.Lock()
	defer m.publishMu.Unlock()
	ml := m.ml.Load()
	if ml == nil {
		return nil // sent with the first alive message
	}
	if err := ml.UpdateNode(m.cfg.LeaveTimeout); err != nil {
		return fmt.Errorf("gossip: publish metadata: %w", err)
	}
	return nil
}

func (m *Membership) localMeta() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.local.Encode()
}

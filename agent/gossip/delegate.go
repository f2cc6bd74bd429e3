package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// delegate adapts Membership to memberlist's delegate interfaces, keeping
// those methods off Membership's own API.
type delegate struct{ m *Membership }

func (d *delegate) NodeMeta(limit int) []byte {
	b, err := d.m.localMeta()
	if err != nil || len(b) > limit {
		d.m.log.Error("local metadata does not fit", zap.Error(err), zap.Int("limit", limit))
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(msg []byte) { d.m.receive(msg) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.m.onJoin(n) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.m.onLeave(n) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.m.onUpdate(n) }

func (d *delegate) AckPayload() []byte { return nil }

func (d *delegate) NotifyPingComplete(n *memberlist.Node, rtt time.Duration, _ []byte) {
	d.m.metrics.probeRTT.Observe(rtt.Seconds())
	d.m.onAck(n.Name)
}

// NotifyAlive refuses a peer the admission check does not know; memberlist
// then ignores its alive message, so it never becomes a member and its
// votes never count.
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	if n.Name == d.m.cfg.NodeName {
		return nil
	}
	refusal := d.m.admit(n.Name, n.Addr)
	if refusal == "" {
		return nil
	}
	d.m.metrics.refusals.WithLabelValues(refusal).Inc()
	d.m.logRefusal(n.Name, n.Address(), refusal)
	return fmt.Errorf("refused: %s", refusal)
}

// logRefusal logs a refused peer at most once a minute per name and
// reason: a rogue member repeats its alive messages many times a second.
func (m *Membership) logRefusal(name, addr, reason string) {
	now := m.clock.Now()
	key := name + "/" + reason
	m.mu.Lock()
	last, seen := m.refusedAt[key]
	quiet := seen && now.Sub(last) < time.Minute
	if !quiet {
		m.refusedAt[key] = now
	}
	m.mu.Unlock()
	if quiet {
		return
	}
	m.log.Warn("refused a gossip member", zap.String("peer", name), zap.String("addr", addr), zap.String("reason", reason))
}

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.m.log.Warn("member name claimed from a second address",
		zap.String("peer", existing.Name), zap.String("addr", existing.Address()), zap.String("other_addr", other.Address()))
}

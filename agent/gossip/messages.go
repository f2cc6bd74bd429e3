package gossip

import (
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Handle registers the handler of an application message kind. Call it
// before Run.
func (m *Membership) Handle(kind byte, h Handler) {
	m.handlers[kind] = h
}

// Broadcast gossips an application message to every member. A later
// message with the same kind and key replaces one still in the queue, so
// only the newest opinion about something travels.
// The key (at most 255 bytes) travels with the message so that members
// passing it on replace older messages with the same key too.
func (m *Membership) Broadcast(kind byte, key string, payload []byte) error {
	msg, err := frame(kind, key, payload)
	if err != nil {
		return err
	}
	m.queue.QueueBroadcast(&broadcast{name: string(msg[:2+len(key)]), msg: msg})
	return nil
}

// SendTo sends an application message to one live member only, in one
// packet, best effort: no retransmission, no relay by the sender. The
// receiver's handler sees it as it sees a broadcast, and its answer decides
// whether the receiver passes it on.
func (m *Membership) SendTo(name string, kind byte, key string, payload []byte) error {
	msg, err := frame(kind, key, payload)
	if err != nil {
		return err
	}
	mem, ok := m.Member(name)
	if !ok || (mem.State != StateAlive && mem.State != StateSuspect) {
		return fmt.Errorf("gossip: %s is not a live member", name)
	}
	ml := m.ml.Load()
	if ml == nil {
		return errors.New("gossip: not running")
	}
	return ml.SendToAddress(memberlist.Address{Addr: mem.Addr, Name: name}, msg)
}

// frame is the wire form of an application message: kind, key length,
// key, payload.
func frame(kind byte, key string, payload []byte) ([]byte, error) {
	if len(key) > 255 {
		return nil, fmt.Errorf("gossip: broadcast key of %d bytes exceeds 255", len(key))
	}
	msg := make([]byte, 0, 2+len(key)+len(payload))
	msg = append(msg, kind, byte(len(key)))
	msg = append(msg, key...)
	msg = append(msg, payload...)
	return msg, nil
}

func (m *Membership) receive(msg []byte) {
	if len(msg) == 0 {
		m.metrics.malformed.WithLabelValues(reasonEmpty).Inc()
		return
	}
	h, ok := m.handlers[msg[0]]
	if !ok {
		m.metrics.malformed.WithLabelValues(reasonUnknownKind).Inc()
		return
	}
	if len(msg) < 2 || len(msg) < 2+int(msg[1]) {
		m.metrics.malformed.WithLabelValues(reasonTruncated).Inc()
		return
	}
	// memberlist may reuse the buffer after we return.
	msg = append([]byte(nil), msg...)
	head := 2 + int(msg[1])
	fresh, err := h(msg[head:])
	if err != nil {
		m.metrics.malformed.WithLabelValues(reasonHandler).Inc()
		m.log.Debug("rejected gossip message", zap.Int("kind", int(msg[0])), zap.Error(err))
		return
	}
	if fresh {
		m.queue.QueueBroadcast(&broadcast{name: string(msg[:head]), msg: msg})
	}
}

// broadcast is a named application message in the transmit queue: a newer
// one with the same name invalidates the older.
type broadcast struct {
	name string
	msg  []byte
}

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

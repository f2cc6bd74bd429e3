package gossip

import "sync"

// Subscription delivers membership events in the order they happened. Events
// are queued without bound and never dropped, so a slow subscriber delays
// only itself; memberlist's callbacks never wait for it.
type Subscription struct {
	// C receives the events. It is closed after Close.
	C <-chan Event

	c      chan Event
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	done   chan struct{}
	closed bool
	exited chan struct{}
	bus    *eventBus
}

func (s *Subscription) push(e Event) {
	s.mu.Lock()
	if !s.closed {
		s.queue = append(s.queue, e)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) pump() {
	defer close(s.exited)
	defer close(s.c)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, e := range batch {
			select {
			case s.c <- e:
			case <-s.done:
				return
			}
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}

// Close stops the delivery and closes C. It is safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	close(s.done)
	<-s.exited
	s.bus.remove(s)
}

// eventBus fans events out to subscriptions.
type eventBus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func newEventBus() *eventBus { return &eventBus{subs: map[*Subscription]struct{}{}} }

func (b *eventBus) subscribe() *Subscription {
	c := make(chan Event)
	s := &Subscription{
		C:      c,
		c:      c,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		bus:    b,
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump()
	return s
}

func (b *eventBus) remove(s *Subscription) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

func (b *eventBus) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(e)
	}
}

// closeAll closes every subscription, at shutdown.
func (b *eventBus) closeAll() {
	b.mu.Lock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

package coordinator

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
)

// A standby is a ranked candidate that does not campaign because another
// alive member advertises the Lease. It watches the Lease (one object)
// instead of reading it every retry period, so that when the coordinator
// dies and it campaigns, it knows when the Lease last changed: the new
// term waits for the old holder to stop from that moment, as it would had
// it campaigned all along, not from the start of its campaign.

// leaseView is what a standby's watch saw of the Lease.
type leaseView struct {
	mu      sync.Mutex
	ok      bool   // the watch has seen the Lease (or its absence) at least once
	state   string // as predecessor.observe writes it; "" for no Lease
	holder  string
	changed time.Time // on l.clock, when the state last changed
}

// leaseState is the state string predecessor.observe compares.
func leaseState(lease *coordinationv1.Lease) (state, holder string) {
	state = "v" + lease.ResourceVersion
	if lease.Spec.RenewTime != nil {
		state += " " + lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	return state, holder
}

func (v *leaseView) record(state, holder string, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ok && state == v.state {
		return
	}
	v.ok, v.state, v.holder, v.changed = true, state, holder, now
}

// seed hands what the watch saw to a new campaign's predecessor: the
// campaign's first read then counts as a change only if the Lease changed
// since. Seeding with a change seen late is safe: the wait runs from it.
func (v *leaseView) seed(p *predecessor, self string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ok || v.state == "" || v.holder == self {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.looked, p.state, p.known, p.holder, p.changed = true, v.state, true, v.holder, v.changed
}

// watchLease keeps v up to date until ctx ends, watching again a second
// after each end of the stream, and after a failure with a backoff
// doubling to 30 s.
func (l *leadership) watchLease(ctx context.Context, v *leaseView) {
	client := l.watchClient
	if client == nil {
		client = l.client
	}
	leases := client.CoordinationV1().Leases(l.namespace)
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", l.cfg.Name).String()}
	delay, lastErr := time.Second, ""
	for ctx.Err() == nil {
		// The first events of a watch without a resourceVersion are the
		// Lease as it is (none: no Lease).
		list, err := leases.List(ctx, opts)
		if err == nil {
			if len(list.Items) == 0 {
				v.record("", "", l.clock.Now())
			} else {
				state, holder := leaseState(&list.Items[0])
				v.record(state, holder, l.clock.Now())
			}
			opts.ResourceVersion = list.ResourceVersion
			var w watch.Interface
			if w, err = leases.Watch(ctx, opts); err == nil {
				l.follow(ctx, w, v)
			}
		}
		switch {
		case err == nil:
			delay, lastErr = time.Second, ""
		case ctx.Err() != nil:
			return
		default:
			if err.Error() != lastErr {
				lastErr = err.Error()
				l.log.Warn("standby: cannot watch the coordinator Lease; retrying with backoff", zap.Error(err))
			}
			delay = min(2*delay, 30*time.Second)
		}
		if !l.sleep(ctx, delay) {
			return
		}
	}
}

func (l *leadership) follow(ctx context.Context, w watch.Interface, v *leaseView) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			lease, isLease := ev.Object.(*coordinationv1.Lease)
			switch {
			case !isLease:
				return // an error from the server: list and watch again
			case ev.Type == watch.Deleted:
				v.record("", "", l.clock.Now())
			default:
				state, holder := leaseState(lease)
				v.record(state, holder, l.clock.Now())
			}
		}
	}
}

// standbyWatch runs l.watchLease while a standby.
type standbyWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (w *standbyWatch) start(ctx context.Context, l *leadership) {
	if w.cancel != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func(done chan struct{}) { defer close(done); l.watchLease(ctx, &l.view) }(w.done)
}

func (w *standbyWatch) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cancel, w.done = nil, nil
}

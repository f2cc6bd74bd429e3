package coordinator

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"

	"github.com/haagent/haagent/internal/periodic"
)

// waitForPredecessor holds a new term back until the previous holder has
// stopped acting, and reports false if ctx ended first. A holder acts for
// up to holderStopBound after its last renewal, by its own clock. The last
// renewal this agent can know of is the last change of the Lease it saw
// while another identity held it (freeing a dead holder's Lease in
// takeFromDeadHolder is conditional on that version, so it adds nothing);
// the wait runs from there on this agent's clock. When the Lease changed hands by running out, that
// time has passed already. With no previous holder seen in this campaign
// (the Lease was ours, say from before a restart), it runs from the start of
// the campaign. Only when the Lease did not exist at this agent's first look
// is there nobody to wait for.
func (l *leadership) waitForPredecessor(ctx context.Context, prev *predecessor) bool {
	until, holder, ok := prev.until(l.cfg.holderStopBound())
	if !ok {
		return true
	}
	d := until.Sub(l.clock.Now())
	if d <= 0 {
		return true
	}
	l.log.Info("holding the coordinator Lease: waiting for the previous holder to stop acting",
		zap.String("holder", holder), zap.Duration("wait", d))
	return l.sleep(ctx, d)
}

// newPredecessor starts the record of what one campaign sees of other
// Lease holders.
func (l *leadership) newPredecessor() *predecessor {
	p := &predecessor{l: l, start: l.clock.Now(), firstInProcess: !l.looked.Load()}
	l.view.seed(p, l.identity)
	return p
}

// predecessor is what one campaign saw of the Lease before this agent held
// it. Every read of the Lease, client-go's and takeFromDeadHolder's, goes
// through observe.
type predecessor struct {
	l     *leadership
	start time.Time // the campaign's start, on l.clock

	mu sync.Mutex
	// firstInProcess: no read of the Lease has answered in this process
	// before this campaign.
	firstInProcess bool
	looked         bool   // a read has answered in this campaign
	absent         bool   // the first read of this process found no Lease
	state          string // what the last read found, "" for no Lease
	known          bool   // another holder's Lease was seen, or freed
	holder         string // the last other holder seen
	changed        time.Time
}

// observe records one read of the Lease: when it finds the Lease changed
// (another resourceVersion or renewTime), and not by this agent, the
// previous holder has just acted. The first read of a campaign counts as
// a change: the Lease may have been renewed just before.
func (p *predecessor) observe(lease *coordinationv1.Lease, err error) {
	if err != nil && !apierrors.IsNotFound(err) {
		return // learnt nothing
	}
	now := p.l.clock.Now()
	state, holder := "", ""
	if err == nil {
		state = "v" + lease.ResourceVersion
		if lease.Spec.RenewTime != nil {
			state += " " + lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
		}
		if lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
	}
	p.l.looked.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !p.looked
	p.looked = true
	if first && p.firstInProcess && err != nil {
		p.absent = true
	}
	if !first && state == p.state {
		return
	}
	p.state = state
	if err == nil && holder == p.l.identity {
		return // our own write, or our Lease from before a restart
	}
	if first && err != nil {
		return // no Lease: nobody to wait for, as far as we know
	}
	p.known, p.changed = true, now
	if holder != "" {
		p.holder = holder
	}
}

// lastHolder is the last other holder this campaign saw, "" for none.
func (p *predecessor) lastHolder() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.holder
}

// freed records that this agent deleted holder's Lease. The delete was
// conditional on the resourceVersion last read, which observe saw first at
// p.changed: the holder has not renewed since, so the wait still runs from
// there, and the time spent confirming the holder dead counts towards it.
func (p *predecessor) freed(holder string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known {
		p.changed = p.l.clock.Now()
	}
	p.known, p.holder, p.state = true, holder, ""
}

// until is when a previous holder has surely stopped acting, given
// stopBound, and its identity; ok is false when there is nobody to wait for.
func (p *predecessor) until(stopBound time.Duration) (until time.Time, holder string, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.known:
		return p.changed.Add(stopBound), p.holder, true
	case p.absent:
		return time.Time{}, "", false
	}
	return p.start.Add(stopBound), "", true
}

// observingClient hands every Lease read to observe.
type observingClient struct {
	coordinationclient.CoordinationV1Interface
	observe func(*coordinationv1.Lease, error)
}

func (c observingClient) Leases(namespace string) coordinationclient.LeaseInterface {
	return observingLeases{LeaseInterface: c.CoordinationV1Interface.Leases(namespace), observe: c.observe}
}

type observingLeases struct {
	coordinationclient.LeaseInterface
	observe func(*coordinationv1.Lease, error)
}

func (o observingLeases) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	lease, err := o.LeaseInterface.Get(ctx, name, opts)
	o.observe(lease, err)
	return lease, err
}

// takeFromDeadHolder frees the Lease when its holder is a node that a
// quorum has confirmed dead: a coordinator that dies with its node would
// otherwise hold every failover back, its own included, until the Lease
// runs out (--lease-duration, plus a retry period). The delete carries the
// Lease's resourceVersion, so a holder that renewed meanwhile keeps it; the
// candidates then race to create it again, and one wins. A holder wrongly
// confirmed dead (it still reaches the API but not the gossip majority)
// loses the Lease at its next renewal, and it does not act meanwhile, since
// a coordinator acts only while it sees the majority. Still, it may be in
// the middle of an action, or win the Lease back before a candidate: so
// the candidate that wins waits for it (waitForPredecessor), and prev
// learns of the delete.
func (l *leadership) takeFromDeadHolder(ctx context.Context, prev *predecessor) {
	leases := observingLeases{LeaseInterface: l.client.CoordinationV1().Leases(l.namespace), observe: prev.observe}
	// No jitter: the election reads the Lease every retry period, and a
	// Lease freed later than that holds failovers back for longer.
	err := periodic.Every(ctx, l.clock, l.cfg.RetryPeriod, 0, func(ctx context.Context) {
		// Read the Lease only when the holder the election last saw is
		// confirmed dead: the election itself reads it every retry period.
		if h := prev.lastHolder(); h == "" || !l.holderDead(h) {
			return
		}
		lease, err := leases.Get(ctx, l.cfg.Name, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return
		}
		holder := *lease.Spec.HolderIdentity
		if holder == "" || holder == l.identity || !l.holderDead(holder) {
			return
		}
		rv := lease.ResourceVersion
		err = leases.Delete(ctx, l.cfg.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
		switch {
		case err == nil:
			prev.freed(holder)
			l.log.Warn("the coordinator's node is confirmed dead by a quorum: freed its Lease", zap.String("holder", holder))
		case !apierrors.IsNotFound(err) && !apierrors.IsConflict(err):
			l.log.Warn("free the Lease of a dead coordinator", zap.String("holder", holder), zap.Error(err))
		}
	})
	if err != nil {
		l.log.Error("dead coordinators' Leases not freed", zap.Error(err))
	}
}

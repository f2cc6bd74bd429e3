package record

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// The retry queue. A write that fails with a retryable error is kept, as a
// copy of the record, in Store.pending (one per record: a later write of a
// queued record merges into it, so the newest status wins), and its name
// goes on Store.queue, a client-go rate-limiting workqueue whose per-item
// exponential rate limiter gives its backoff: Config.InitialBackoff after
// the first failure, doubling after each further one up to Config.MaxBackoff.
// The delaying layer under that queue is a dueQueue, on the Store's clock:
// names wait there until Flush promotes the due ones to the workqueue and
// takes them all off it, so between two calls the workqueue itself is empty.
// Everything is done with s.mu held.

// pendingWrite is a record whose latest status (and maybe the record
// itself) is not in the API yet.
type pendingWrite struct {
	record *NodeFailover // a copy owned by the Store
	create bool          // the create has not succeeded yet
}

// newRetryQueue returns the Store's retry queue and its delaying layer.
func newRetryQueue(cfg Config, clk clock.PassiveClock) (workqueue.TypedRateLimitingInterface[string], *dueQueue) {
	due := &dueQueue{
		// Unnamed, so without metrics and without a goroutine.
		TypedInterface: workqueue.NewTyped[string](),
		clock:          clk,
		due:            map[string]time.Time{},
	}
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.InitialBackoff, cfg.MaxBackoff)
	q := workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{
		DelayingQueue: due,
	})
	return q, due
}

// dueQueue is the delaying layer of the retry queue. client-go's delaying
// queue hands an item to the queue from a goroutine of its own when the
// item's timer fires; dueQueue holds each name with its due time until
// promote hands over those due by the Store's clock. So Flush never waits,
// a Store starts no goroutine, and a fake clock drives the backoff in tests.
// A later AddAfter of a waiting name replaces its due time: the backoff
// after the newest failure counts.
type dueQueue struct {
	workqueue.TypedInterface[string]
	clock clock.PassiveClock
	due   map[string]time.Time
}

var _ workqueue.TypedDelayingInterface[string] = (*dueQueue)(nil)

// AddAfter makes name due after d.
func (q *dueQueue) AddAfter(name string, d time.Duration) {
	q.due[name] = q.clock.Now().Add(d)
}

// promote adds the names that are due to the workqueue, in name order.
func (q *dueQueue) promote() {
	now := q.clock.Now()
	var names []string
	for name, at := range q.due {
		if !now.Before(at) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		delete(q.due, name)
		q.Add(name)
	}
}

// remove forgets a waiting name.
func (q *dueQueue) remove(name string) { delete(q.due, name) }

// wait returns how long until name is due.
func (q *dueQueue) wait(name string) time.Duration { return q.due[name].Sub(q.clock.Now()) }

// Flush retries the queued writes that are due, once each, and returns the
// errors of this pass (nil if every attempt succeeded or none was due). It
// never waits: each queued write has its own exponential backoff, from
// Config.InitialBackoff doubling up to Config.MaxBackoff, so the
// coordinator calls Flush on every pass of its loop and the backoff decides
// which writes go out.
//
// A queued write stays queued until it succeeds, except when the record was
// deleted meanwhile (the error matches ErrNotFound) or the API rejects it as
// invalid, which no retry can fix; both are logged and counted in
// haagent_record_dropped_writes_total. A conflict is resolved by reading the
// record and merging the queued status into it (see Merge).
//
// The queue is in memory. If the process dies with writes queued, or the
// coordinator loses the Lease and drops them (DropPending), the next
// coordinator resumes from what the API holds, which is behind by at most
// those writes.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.due.promote()
	// Take every due name off the workqueue. Get does not block: the
	// workqueue holds Len names and only Flush takes them, under s.mu.
	names := make([]string, 0, s.queue.Len())
	for s.queue.Len() > 0 {
		name, _ := s.queue.Get()
		s.queue.Done(name)
		names = append(names, name)
	}
	var errs []error
	for i, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, &Error{Op: opFlush, Kind: ErrPending, Err: ctx.Err()})
			// Still due: the next Flush tries them, with no added backoff.
			for _, left := range names[i:] {
				s.queue.AddAfter(left, 0)
			}
			break
		}
		p, ok := s.pending[name]
		if !ok {
			continue
		}
		s.metrics.retries.Inc()
		if err := s.retry(ctx, opFlush, name, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pending returns the number of queued writes.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// PendingCreate reports whether the named record's create is queued: the
// record is not in the API yet, so no other coordinator could find it.
func (s *Store) PendingCreate(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pending[name]
	return ok && p.create
}

// DropPending forgets every queued write and returns how many there were,
// counted in haagent_record_pending_dropped_total. The coordinator calls it
// when it loses the Lease: a queued write is this coordinator's view of a
// failover, and once another agent may lead, or days later when this one
// leads again, that view is stale. Written late, it would bring back a
// failover of a node that may be healthy by then. What the API holds is
// what the next coordinator resumes from.
func (s *Store) DropPending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pending)
	if n == 0 {
		return 0
	}
	names := make([]string, 0, n)
	for name := range s.pending {
		names = append(names, name)
		s.unqueue(name)
	}
	slices.Sort(names)
	s.metrics.pendingDropped.Add(float64(n))
	s.log.Warn("queued failover record writes dropped", zap.Strings("nodefailovers", names))
	return n
}

// enqueue queues a copy of f after a failed first attempt. Callers hold
// s.mu and have checked that f is not queued yet.
func (s *Store) enqueue(f *NodeFailover, create bool) {
	s.pending[f.Name] = &pendingWrite{record: f.DeepCopy(), create: create}
	s.queue.AddRateLimited(f.Name)
	s.metrics.pending.Set(float64(len(s.pending)))
	s.log.Info("failover record write queued for retry",
		zap.String("nodefailover", f.Name), zap.Bool("create", create), zap.Duration("retryIn", s.due.wait(f.Name)))
}

// unqueue forgets the queued write of name, and its backoff. Callers hold
// s.mu.
func (s *Store) unqueue(name string) {
	delete(s.pending, name)
	s.due.remove(name)
	s.queue.Forget(name)
	s.metrics.pending.Set(float64(len(s.pending)))
}

// retry makes one attempt at a queued write and updates the queue. It
// returns nil when the write is done, an error matching ErrPending when it
// stays queued, and any other error when it was dropped; op names the
// caller's operation in the error. Callers hold s.mu.
func (s *Store) retry(ctx context.Context, op, name string, p *pendingWrite) error {
	err := s.persist(ctx, p)
	// Failed attempts so far: the first one, then one per retry.
	attempts := s.queue.NumRequeues(name)
	drop := ""
	switch {
	case err == nil:
		s.unqueue(name)
		s.log.Info("queued failover record write done",
			zap.String("nodefailover", name), zap.Int("attempts", attempts+1))
		return nil
	case apierrors.IsNotFound(err):
		drop = dropDeleted
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		drop = dropInvalid
	}
	if drop != "" {
		s.unqueue(name)
		s.metrics.dropped.WithLabelValues(drop).Inc()
		s.log.Error("queued failover record write dropped",
			zap.String("nodefailover", name), zap.String("reason", drop), zap.Error(err))
		return wrap(op, name, err)
	}
	s.queue.AddRateLimited(name)
	s.log.Warn("queued failover record write failed",
		zap.String("nodefailover", name), zap.Int("attempts", attempts+1), zap.Duration("retryIn", s.due.wait(name)), zap.Error(err))
	return &Error{Op: op, Name: name, Kind: ErrPending, Err: err}
}

// persist writes a queued record: creates it if needed, then writes its
// status. On a conflict, or when the create finds the record already there
// (an earlier create that timed out may have succeeded), it reads the
// record, merges the queued status into it and tries again, once.
func (s *Store) persist(ctx context.Context, p *pendingWrite) error {
	name := p.record.Name
	reread := false
	if p.create {
		err := s.create(ctx, p.record)
		switch {
		case err == nil:
		case apierrors.IsAlreadyExists(err):
			reread = true
		default:
			return err
		}
		p.create = false
	}
	for attempt := 0; ; attempt++ {
		if reread {
			u, err := s.client.Get(ctx, name, metav1.GetOptions{})
			s.count(opGet, err)
			if err != nil {
				return err
			}
			cur, err := decode(u)
			if err != nil {
				return err
			}
			cur.Status.Merge(&p.record.Status)
			p.record = cur
		}
		p.record.Status.SetConditions(p.record.Generation, s.clock.Now())
		u, err := encode(p.record)
		if err != nil {
			return err
		}
		out, err := s.client.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		s.count(opUpdateStatus, err)
		if err == nil {
			p.record.ResourceVersion = out.GetResourceVersion()
			return nil
		}
		if !apierrors.IsConflict(err) || attempt > 0 {
			return err
		}
		reread = true
	}
}

// retryable reports whether err is worth retrying unchanged: the API server
// was overloaded, unavailable or unreachable, or the request timed out.
// Other API errors (not found, conflict, forbidden, invalid) would fail
// again.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		code := status.Status().Code
		return code >= 500 || code == 429 ||
			apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err)
	}
	if errors.Is(err, context.DeadlineExceeded) || utilnet.IsConnectionRefused(err) ||
		utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

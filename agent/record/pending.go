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
)

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
	now := s.clock.Now()
	var names []string
	for name, p := range s.pending {
		if !now.Before(p.due) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			errs = append(errs, &Error{Op: opFlush, Kind: ErrPending, Err: ctx.Err()})
			break
		}
		s.metrics.retries.Inc()
		if err := s.retry(ctx, opFlush, name, s.pending[name]); err != nil {
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
	}
	slices.Sort(names)
	clear(s.pending)
	s.metrics.pending.Set(0)
	s.metrics.pendingDropped.Add(float64(n))
	s.log.Warn("queued failover record writes dropped", zap.Strings("nodefailovers", names))
	return n
}

// enqueue queues a copy of f after a failed first attempt. Callers hold
// s.mu and have checked that f is not queued yet.
func (s *Store) enqueue(f *NodeFailover, create bool) {
	p := &pendingWrite{record: f.DeepCopy(), create: create, attempts: 1}
	p.due = s.clock.Now().Add(s.backoff(p.attempts))
	s.pending[f.Name] = p
	s.metrics.pending.Set(float64(len(s.pending)))
	s.log.Info("failover record write queued for retry",
		zap.String("nodefailover", f.Name), zap.Bool("create", create), zap.Duration("retryIn", s.backoff(p.attempts)))
}

// retry makes one attempt at a queued write and updates the queue. It
// returns nil when the write is done, an error matching ErrPending when it
// stays queued, and any other error when it was dropped; op names the
// caller's operation in the error. Callers hold s.mu.
func (s *Store) retry(ctx context.Context, op, name string, p *pendingWrite) error {
	err := s.persist(ctx, p)
	drop := ""
	switch {
	case err == nil:
		delete(s.pending, name)
		s.metrics.pending.Set(float64(len(s.pending)))
		s.log.Info("queued failover record write done",
			zap.String("nodefailover", name), zap.Int("attempts", p.attempts+1))
		return nil
	case apierrors.IsNotFound(err):
		drop = dropDeleted
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		drop = dropInvalid
	}
	if drop != "" {
		delete(s.pending, name)
		s.metrics.pending.Set(float64(len(s.pending)))
		s.metrics.dropped.WithLabelValues(drop).Inc()
		s.log.Error("queued failover record write dropped",
			zap.String("nodefailover", name), zap.String("reason", drop), zap.Error(err))
		return wrap(op, name, err)
	}
	p.attempts++
	wait := s.backoff(p.attempts)
	p.due = s.clock.Now().Add(wait)
	s.log.Warn("queued failover record write failed",
		zap.String("nodefailover", name), zap.Int("attempts", p.attempts), zap.Duration("retryIn", wait), zap.Error(err))
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

// backoff returns the wait after the given number of failed attempts.
func (s *Store) backoff(attempts int) time.Duration {
	d := s.cfg.InitialBackoff
	for i := 1; i < attempts && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
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

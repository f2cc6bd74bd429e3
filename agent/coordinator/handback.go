package coordinator

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/agent/record"
)

// handBack ends the failover once the node has been back (alive on
// gossip and Ready by its kubelet) for the stabilization period: it
// removes exactly what haagent added and records the repair.
func (c *Coordinator) handBack(ctx context.Context, f *record.NodeFailover, members []failover.Member) error {
	node, st := f.Spec.Node, &f.Status
	if memberState(members, node) != failover.StateAlive || !memberReady(members, node) {
		c.returned(node, time.Time{})
		// A node removed for good never returns: once its workloads are
		// back, its record ends instead of waiting for ever.
		if st.Phase != record.PhaseRecovering && c.nodeDeleted(ctx, node) {
			st.Message = msgDeletedNothingToReturn
			return st.Advance(record.PhaseCompleted)
		}
		return nil
	}
	n, err := c.node(ctx, node)
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %q: %w", evict.ErrNodeNotFound, node, err)
	}
	if err != nil {
		return err
	}
	if nodeReady(n) != corev1.ConditionTrue {
		c.returned(node, time.Time{})
		return nil
	}
	now := c.clock.Now()
	since := c.returned(node, now)
	need := c.stabilization(node)
	if now.Sub(since) < need {
		st.Message = fmt.Sprintf("node is back; uncordon after %s of good health", need)
		return nil
	}
	if st.NodeReturned == nil {
		st.NodeReturned = record.At(since)
	}
	from := st.Phase
	if err := st.Advance(record.PhaseNodeReturned); err != nil {
		return err
	}
	if from != record.PhaseNodeReturned {
		// A phase of its own, though the hand-back usually follows at
		// once: its Event says when the node was found back for good.
		st.Message = fmt.Sprintf("node back and healthy for %s", now.Sub(since).Round(time.Second))
		c.phaseEvent(f, from)
	}
	if err := c.checkHolder(ctx); err != nil {
		return err
	}
	if _, err := c.d.Evictor.Undo(ctx, node); err != nil {
		return err
	}
	st.Uncordoned = record.At(c.clock.Now())
	st.Message = "node handed back: haagent's cordon and taints removed"
	c.returned(node, time.Time{})
	return st.Advance(record.PhaseCompleted)
}

// nodeDeleted reports whether the API says the Node no longer exists. Any
// other answer, an error included, counts as "still there".
func (c *Coordinator) nodeDeleted(ctx context.Context, node string) bool {
	_, err := c.node(ctx, node)
	return apierrors.IsNotFound(err)
}

// returned tracks since when a node has been back; a zero now resets it.
func (c *Coordinator) returned(node string, now time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.back == nil {
		c.back = map[string]time.Time{}
	}
	if now.IsZero() {
		delete(c.back, node)
		return time.Time{}
	}
	if t, ok := c.back[node]; ok {
		return t
	}
	c.back[node] = now
	return now
}

// stabilization doubles for each other failover of the node within the
// last hour: a flapping node stays cordoned longer.
func (c *Coordinator) stabilization(node string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.cfg.Stabilization
	for _, t := range c.history[node] {
		if c.clock.Since(t) < time.Hour && d < time.Hour {
			d *= 2
		}
	}
	return d
}

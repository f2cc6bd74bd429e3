package coordinator

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// errNotHolder stops a write: the coordinator Lease has another holder.
var errNotHolder = errors.New("coordinator: the coordinator Lease has another holder: not acting")

// checkHolder reads the coordinator Lease from the API server, not from
// what the election last saw, and fails unless this agent holds it. It runs
// right before every write of a failover, so that a coordinator that lost
// the Lease (it stalled past its renew deadline, or it was freed as dead
// and a successor took it) does not act on a decision of its past term.
// client-go ends the term's context too, but only at its next renewal
// attempt; this closes the window down to one request. The new holder
// waits for the old one to stop as well (waitForPredecessor): the two
// together keep one actor at a time. It costs one GET per write step, a
// handful per failover.
func (c *Coordinator) checkHolder(ctx context.Context) error {
	lease, err := c.d.Client.CoordinationV1().Leases(c.d.Namespace).Get(ctx, c.cfg.Lease.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the coordinator Lease before acting: %w", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != c.d.Gossip.LocalName() {
		c.metrics.notHolder.Inc()
		return errNotHolder
	}
	return nil
}

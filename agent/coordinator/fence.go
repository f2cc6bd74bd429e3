package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"

	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/record"
)

// Messages of a record that the fence guards hold in AwaitingFence.
const (
	msgNodeRenewed = "the node's kubelet renewed its Lease after the failover was confirmed: it is not fenced; " +
		"its stateful pods stay until it is back or a person acts"
	msgNodeReady = "the node is Ready: it is not fenced; its stateful pods stay until it is back or a person acts"
)

// fenceRefused keeps the record waiting in AwaitingFence: the guards found
// the node's kubelet alive, so the node is not fenced. It is no failure:
// the record moves on when the node is back on gossip (Recovering, then the
// hand-back), or a person steps in. Logged and counted once per refusal
// spell, not on every tick.
func (c *Coordinator) fenceRefused(f *record.NodeFailover, err error) {
	reason, msg := fenceRefusedRenewed, msgNodeRenewed
	if errors.Is(err, evict.ErrNodeReady) {
		reason, msg = fenceRefusedReady, msgNodeReady
	}
	if f.Status.Message == msg {
		return
	}
	f.Status.Message = msg
	c.refusedFences.WithLabelValues(reason).Inc()
	if c.d.Recorder != nil {
		c.d.Recorder.Event(recordRef(f), corev1.EventTypeWarning, ReasonFenceRefused, msg)
	}
	c.log.Warn("fence refused: the node's kubelet is alive; stateful pods stay", zap.String("node", f.Spec.Node),
		zap.String("reason", reason), zap.Error(err))
}

// fenceRecheck is how often a record that waits with --fence-bound 0 looks
// whether its stateful pods are still on the node: each look lists the
// node's pods, and a person acts in minutes, not milliseconds.
const fenceRecheck = 10 * time.Second

// recheckFence moves a record that waits with no fence bound on to
// Recovering once no pod awaiting the fence is left on the node: a person
// force-deleted them, or, for a deleted Node, Kubernetes did (the look
// then fails with evict.ErrNodeNotFound, see nodeGone). The first look is
// fenceRecheck after this term found the record waiting: the evictions
// that led here had just listed the pods.
func (c *Coordinator) recheckFence(ctx context.Context, f *record.NodeFailover) error {
	node, st := f.Spec.Node, &f.Status
	now := c.clock.Now()
	c.mu.Lock()
	p := c.paceOf(node)
	due := !p.fenceChecked.IsZero() && now.Sub(p.fenceChecked) >= fenceRecheck
	if due || p.fenceChecked.IsZero() {
		p.fenceChecked = now
	}
	c.mu.Unlock()
	if !due {
		return nil
	}
	left, err := c.d.Evictor.PodsAwaitingFence(ctx, node)
	if err != nil || len(left) > 0 {
		return err
	}
	st.Message = "no stateful pods left on the node (a person or Kubernetes removed them): nothing waits for the fence"
	return st.Advance(record.PhaseRecovering)
}

// Values of the reason label of haagent_failover_fence_refused_total.
const (
	fenceRefusedRenewed = "node_renewed"
	fenceRefusedReady   = "node_ready"
)

func newFenceRefused(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "haagent", Subsystem: "failover", Name: "fence_refused_total",
		Help: "Times the fence guards found the kubelet of a node past its fence bound alive (node_renewed: it renewed its Lease after confirmation; node_ready: it is Ready), so its stateful pods stayed. Counted once per spell."},
		[]string{"reason"})
	if err := reg.Register(refused); err != nil {
		return nil, err
	}
	for _, r := range []string{fenceRefusedRenewed, fenceRefusedReady} {
		refused.WithLabelValues(r)
	}
	return refused, nil
}

// beforeFence reports whether a record in phase p may still fence its node.
func beforeFence(p record.Phase) bool {
	switch p {
	case record.PhaseConfirmed, record.PhaseCordoned, record.PhaseTainted, record.PhasePodsNotReady,
		record.PhaseEvicting, record.PhaseAwaitingFence:
		return true
	}
	return false
}

package main

import (
	"context"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// nodeGetter reads a Node.
type nodeGetter interface {
	Get(name string) (*corev1.Node, bool)
}

// zoneFromNode returns the topology zone label of this agent's own Node, so
// that the per-zone failover guard works with one DaemonSet for every zone.
// --zone, when set, wins. A Node that cannot be read (not registered yet,
// or the API away), or one with no zone label, gives "" (the guard then
// judges the cluster as one zone), and the agent says so.
func zoneFromNode(nodes nodeGetter, node string, log *zap.Logger) string {
	n, ok := nodes.Get(node)
	if !ok {
		log.Warn("this node's Node could not be read; publishing no zone (set --zone to name it)", zap.String("node", node))
		return ""
	}
	zone := n.Labels[corev1.LabelTopologyZone]
	if zone == "" {
		log.Info("this node has no zone label; publishing no zone", zap.String("label", corev1.LabelTopologyZone))
	}
	return zone
}

// ownNode reads this agent's own Node from the API, once, at start: an
// agent reads no other Node (see agent/roster).
type ownNode struct {
	client  kubernetes.Interface
	timeout time.Duration
}

func (o ownNode) Get(name string) (*corev1.Node, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	n, err := o.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{ResourceVersion: "0"})
	return n, err == nil
}

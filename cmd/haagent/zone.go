package main

import (
	"context"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// zoneFromNode returns the topology zone label of this agent's own Node, so
// that the per-zone failover guard works with one DaemonSet for every zone.
// --zone, when set, wins. A Node that cannot be read, or has no zone label,
// gives "" (the guard then judges the cluster as one zone): the agent starts
// anyway and says so.
func zoneFromNode(ctx context.Context, client kubernetes.Interface, node string, log *zap.Logger) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		log.Warn("cannot read this node's zone label; publishing no zone (set --zone to name it)",
			zap.String("node", node), zap.Error(err))
		return ""
	}
	zone := n.Labels[corev1.LabelTopologyZone]
	if zone == "" {
		log.Info("this node has no zone label; publishing no zone", zap.String("label", corev1.LabelTopologyZone))
	}
	return zone
}

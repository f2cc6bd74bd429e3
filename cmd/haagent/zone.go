package main

import (
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
)

// nodeGetter reads a Node from the agent's Node cache.
type nodeGetter interface {
	Get(name string) (*corev1.Node, bool)
}

// zoneFromNode returns the topology zone label of this agent's own Node, so
// that the per-zone failover guard works with one DaemonSet for every zone.
// --zone, when set, wins. It reads the Node cache and never waits: a Node
// not (yet) in the cache, or with no zone label, gives "" (the guard then
// judges the cluster as one zone), and the agent says so.
func zoneFromNode(nodes nodeGetter, node string, log *zap.Logger) string {
	n, ok := nodes.Get(node)
	if !ok {
		log.Warn("this node is not in the Node list (yet); publishing no zone (set --zone to name it)", zap.String("node", node))
		return ""
	}
	zone := n.Labels[corev1.LabelTopologyZone]
	if zone == "" {
		log.Info("this node has no zone label; publishing no zone", zap.String("label", corev1.LabelTopologyZone))
	}
	return zone
}

package evict

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Action names one failover action: in metrics, logs and errors.
type Action string

// The actions, a fixed set of metric label values.
const (
	ActionCordon           Action = "cordon"
	ActionTaint            Action = "taint"
	ActionMarkNodeNotReady Action = "mark_node_not_ready"
	ActionMarkPodsNotReady Action = "mark_pods_not_ready"
	ActionEvictPods        Action = "evict_pods"
	ActionOutOfService     Action = "out_of_service"
	ActionForceDeletePods  Action = "force_delete_pods"
	ActionUndo             Action = "undo"
	ActionState            Action = "state"
	ActionNodeLease        Action = "node_lease"
	// ActionPodsAwaitingFence reads which pods still wait for the fence.
	ActionPodsAwaitingFence Action = "pods_awaiting_fence"
)

var allActions = []Action{
	ActionCordon, ActionTaint, ActionMarkNodeNotReady, ActionMarkPodsNotReady, ActionEvictPods,
	ActionOutOfService, ActionForceDeletePods, ActionUndo, ActionState, ActionNodeLease, ActionPodsAwaitingFence,
}

// Results of an action call.
const (
	resultSuccess = "success"
	resultError   = "error"
	resultDryRun  = "dry_run"
)

type metrics struct {
	actions      *prometheus.CounterVec
	evictions    *prometheus.CounterVec
	forceDeletes *prometheus.CounterVec
	duration     *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "evict"
	m := &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "actions_total",
			Help: "Failover action calls, by action and result (success, error, dry_run). A call that found nothing to do is a success.",
		}, []string{"action", "result"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pod_evictions_total",
			Help: "Pods of dead nodes by eviction outcome: evicted, gone (already deleted), pdb_blocked (429), failed, skipped (DaemonSet, mirror, finished or terminating pods). Dry runs are not counted.",
		}, []string{"outcome"}),
		forceDeletes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "pod_force_deletions_total",
			Help: "Force deletions (grace 0) of pods of fenced nodes by outcome: deleted, gone, failed. Dry runs are not counted.",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "api_request_duration_seconds",
			Help:    "Duration of the API requests of failover actions, by action.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"action"}),
	}
	for _, c := range []prometheus.Collector{m.actions, m.evictions, m.forceDeletes, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, a := range allActions {
		for _, r := range []string{resultSuccess, resultError, resultDryRun} {
			m.actions.WithLabelValues(string(a), r)
		}
		m.duration.WithLabelValues(string(a))
	}
	for _, o := range []PodOutcome{PodEvicted, PodGone, PodPDBBlocked, PodFailed, PodSkipped} {
		m.evictions.WithLabelValues(string(o))
	}
	for _, o := range []PodOutcome{PodDeleted, PodGone, PodFailed} {
		m.forceDeletes.WithLabelValues(string(o))
	}
	return m, nil
}

func (m *metrics) observe(a Action, d time.Duration) {
	m.duration.WithLabelValues(string(a)).Observe(d.Seconds())
}

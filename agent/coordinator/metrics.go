package coordinator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/agent/record"
)

type metrics struct {
	leader    prometheus.Gauge
	paused    prometheus.Gauge
	agentDown prometheus.Gauge
	active    prometheus.Gauge
	held      prometheus.Counter
	failovers *prometheus.CounterVec
	detection prometheus.Histogram
	repair    prometheus.Histogram
	phase     *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	notHolder prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "failover"
	buckets := []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600}
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "coordinator",
			Help: "1 while this agent holds the coordinator Lease."}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "paused",
			Help: "1 while a guard pauses automatic failover (too many nodes dead at once)."}),
		agentDown: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "agent_down_nodes",
			Help: "Nodes whose agent is dead but whose kubelet answers: no failover, look at the agent."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "active",
			Help: "Failovers in progress."}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "held_total",
			Help: "Times a confirmed dead node was held back by a guard (logged once per reason)."}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "total",
			Help: "Failovers by outcome: started, completed, failed, dry-run."}, []string{"outcome"}),
		detection: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "detection_seconds",
			Help: "Time to detect: confirmed dead minus last heard from.", Buckets: buckets}),
		repair: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "repair_seconds",
			Help: "Time to repair: every affected workload back minus last heard from.", Buckets: buckets}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "phase_seconds",
			Help: "Time from last heard to each phase of a failover.", Buckets: buckets}, []string{"phase"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "step_retries_total",
			Help: "Failover steps to be tried again after a backoff (1 s, doubling to 30 s), by the phase they were in and reason: error (an API error) or blocked (evictions refused by a PodDisruptionBudget, failed or deferred with none accepted; the fence guards refusing)."},
			[]string{"phase", "reason"}),
		notHolder: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "not_holder_writes_total",
			Help: "Failover writes not made because the coordinator Lease, read right before them, had another holder."}),
	}
	for _, c := range []prometheus.Collector{m.leader, m.paused, m.agentDown, m.active, m.held, m.failovers, m.detection, m.repair, m.phase, m.retries, m.notHolder} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []string{"started", string(record.OutcomeCompleted), string(record.OutcomeFailed), string(record.OutcomeDryRun)} {
		m.failovers.WithLabelValues(o)
	}
	for _, p := range record.Phases() {
		if p.Final() {
			continue
		}
		for _, r := range []string{retryError, retryBlocked} {
			m.retries.WithLabelValues(string(p), r)
		}
	}
	return m, nil
}

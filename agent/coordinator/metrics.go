package coordinator

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/internal/metriclabel"
)

type metrics struct {
	enabled   prometheus.Gauge
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
	// memberStatus has one series per member the coordinator has a
	// finding on, set by the lead loop; shown is what it exports now.
	memberStatus *prometheus.GaugeVec
	mu           sync.Mutex
	shown        map[string]string
}

// Values of the status label of haagent_failover_member_status: what the
// coordinator knows of a member that is not simply healthy. Alerts read
// them, one alert per member, from the coordinator alone: every other agent
// would report the same member again.
const (
	// statusAgentDown: the member's agent is dead, its kubelet answers.
	statusAgentDown = "agent_down"
	// statusHeld: confirmed dead, its failover held back by a guard.
	statusHeld = "held"
	// statusFailingOver: a failover of the dead member is under way, its
	// workloads not all back yet.
	statusFailingOver = "failing_over"
	// statusFailedOver: its workloads are back elsewhere; the failover
	// waits for the node to return (or its Node to be deleted).
	statusFailedOver = "failed_over"
	// statusReturning: failed over and alive again; the failover hands it
	// back after --stabilization.
	statusReturning = "returning"
	// statusDraining: alive but not ready for too long; its pods are being
	// moved.
	statusDraining = "draining"
	// statusFailed: its last failover was given up and the node is not
	// back.
	statusFailed = "failed"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "failover"
	buckets := []float64{0.25, 0.5, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600}
	m := &metrics{
		enabled: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "enabled",
			Help: "1 if this agent fails dead nodes over automatically (--failover), 0 if it only votes."}),
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
			Help: "Failovers by outcome: started, then how each ended: completed, aborted, failed, dry_run."}, []string{"outcome"}),
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
		memberStatus: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "member_status",
			Help: "1 for each member the coordinator has a finding on, by status: agent_down, held, failing_over, failed_over, returning, draining, failed. Healthy members have no series; only the Lease holder exports any."},
			[]string{"member", "status"}),
		shown: map[string]string{},
	}
	for _, c := range []prometheus.Collector{m.enabled, m.leader, m.paused, m.agentDown, m.active, m.held, m.failovers, m.detection, m.repair, m.phase, m.retries, m.notHolder, m.memberStatus} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.failovers.WithLabelValues("started")
	for _, o := range []record.Outcome{record.OutcomeCompleted, record.OutcomeAborted, record.OutcomeFailed, record.OutcomeDryRun} {
		m.failovers.WithLabelValues(outcomeLabel(o))
	}
	for _, p := range record.Phases() {
		if p.Final() {
			continue
		}
		for _, r := range []string{retryError, retryBlocked} {
			m.retries.WithLabelValues(phaseLabel(p), r)
		}
	}
	return m, nil
}

// outcomeLabel and phaseLabel are the NodeFailover API's spellings as
// label values: dry_run and pods_not_ready, not dry-run and PodsNotReady.
func outcomeLabel(o record.Outcome) string { return metriclabel.Value(string(o)) }

func phaseLabel(p record.Phase) string { return metriclabel.Value(string(p)) }

// setMemberStatus exports status (member -> status) as it is: the series of
// members no longer in it, or now in another status, are deleted, so an
// alert on a member resolves once the coordinator has nothing on it. A nil
// map (the Lease lost) deletes them all.
func (m *metrics) setMemberStatus(status map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for member, was := range m.shown {
		if status[member] != was {
			m.memberStatus.DeleteLabelValues(member, was)
			delete(m.shown, member)
		}
	}
	for member, s := range status {
		if _, ok := m.shown[member]; !ok {
			m.memberStatus.WithLabelValues(member, s).Set(1)
			m.shown[member] = s
		}
	}
}

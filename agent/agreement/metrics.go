package agreement

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/agent/failover"
	"github.com/haagent/haagent/internal/metriclabel"
)

type metrics struct {
	opinions *prometheus.GaugeVec
	sent     *prometheus.CounterVec
	received *prometheus.CounterVec
	direct   *prometheus.CounterVec

	suppressed    prometheus.Counter
	deferred      prometheus.Counter
	earlyVerdicts prometheus.Counter
	prechecks     prometheus.Counter
	noticesSent   prometheus.Counter
	notices       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "agreement"
	m := &metrics{
		opinions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "opinions",
			Help: "This agent's opinions of the other nodes, by opinion: alive, suspect, dead, agent_down.",
		}, []string{"opinion"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_sent_total",
			Help: "Votes this agent sent, by opinion: alive, suspect, dead, agent_down.",
		}, []string{"opinion"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_received_total",
			Help: "Votes received from peers: fresh (newer than what this agent held) or duplicate.",
		}, []string{"result"}),
		direct: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_sent_to_coordinator_total",
			Help: "Votes this agent sent straight to the coordinator, by result (failure: the coordinator is not a live member here).",
		}, []string{"result"}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_suppressed_total",
			Help: "Dead votes not sent because the coordinator said the node's failover is under way.",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "repeats_deferred_total",
			Help: "Non-alive opinions left for a later repeat round because a round sends at most --vote-repeat-max.",
		}),
		earlyVerdicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "early_verdicts_total",
			Help: "Members declared dead by gossip whose opinion came at once from the kubelet check made while they were suspect.",
		}),
		prechecks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "prechecks_total",
			Help: "Kubelet checks of members gossip suspects (this agent's probe or a peer's suspect vote), made before they are declared dead.",
		}),
		noticesSent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "notices_sent_total",
			Help: "Failover-under-way notices this agent sent as coordinator.",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "notices_received_total",
			Help: "Failover-under-way notices received: fresh (new, passed on) or duplicate.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.opinions, m.sent, m.received, m.direct, m.suppressed, m.deferred, m.earlyVerdicts, m.prechecks, m.noticesSent, m.notices} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
		m.opinions.WithLabelValues(opinionLabel(op))
		m.sent.WithLabelValues(opinionLabel(op))
	}
	m.received.WithLabelValues("fresh")
	m.received.WithLabelValues("duplicate")
	m.direct.WithLabelValues("success")
	m.direct.WithLabelValues("failure")
	m.notices.WithLabelValues("fresh")
	m.notices.WithLabelValues("duplicate")
	return m, nil
}

// opinionLabel is an opinion as a label value: agent_down, not the vote's
// agent-down.
func opinionLabel(op failover.Opinion) string { return metriclabel.Value(op.String()) }

// add moves a counter as the core said.
func (m *metrics) add(c count) {
	n := float64(c.N)
	switch c.Counter {
	case counterReceived:
		m.received.WithLabelValues(c.Label).Add(n)
	case counterSuppressed:
		m.suppressed.Add(n)
	case counterDeferred:
		m.deferred.Add(n)
	case counterEarlyVerdicts:
		m.earlyVerdicts.Add(n)
	case counterPrechecks:
		m.prechecks.Add(n)
	case counterNotices:
		m.notices.WithLabelValues(c.Label).Add(n)
	}
}

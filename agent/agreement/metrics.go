package agreement

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/agent/failover"
)

type metrics struct {
	opinions *prometheus.GaugeVec
	sent     *prometheus.CounterVec
	received *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "agreement"
	m := &metrics{
		opinions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "opinions",
			Help: "This agent's opinions of the other nodes, by opinion.",
		}, []string{"opinion"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_sent_total",
			Help: "Votes this agent sent, by opinion.",
		}, []string{"opinion"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "votes_received_total",
			Help: "Votes received from peers: fresh (new, passed on) or duplicate.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.opinions, m.sent, m.received} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, op := range []failover.Opinion{failover.OpinionAlive, failover.OpinionSuspect, failover.OpinionDead, failover.OpinionAgentDown} {
		m.opinions.WithLabelValues(op.String())
		m.sent.WithLabelValues(op.String())
	}
	m.received.WithLabelValues("fresh")
	m.received.WithLabelValues("duplicate")
	return m, nil
}

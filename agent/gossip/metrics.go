package gossip

import "github.com/prometheus/client_golang/prometheus"

// metrics are the gossip component's Prometheus metrics. Label values come
// from fixed sets: states, event types, transport kinds, reasons.
type metrics struct {
	members *prometheus.GaugeVec
	events  *prometheus.CounterVec
	// byState and byEvent are the series of members and events, looked up
	// once: they change with every membership event.
	byState          [len(stateNames)]prometheus.Gauge
	byEvent          [len(eventNames)]prometheus.Counter
	probeRTT         prometheus.Histogram
	healthScore      prometheus.Gauge
	messagesSent     *prometheus.CounterVec
	messagesReceived *prometheus.CounterVec
	bytesSent        *prometheus.CounterVec
	bytesReceived    *prometheus.CounterVec
	metaErrors       prometheus.Counter
	malformed        *prometheus.CounterVec
	joins            *prometheus.CounterVec
	keyringReloads   *prometheus.CounterVec
	keyringOK        prometheus.Gauge
	refusals         *prometheus.CounterVec
	expected         prometheus.Gauge
	inTouch          prometheus.Gauge
	isolationPings   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "haagent", "gossip"
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "members",
			Help: "Members of the gossip group by state, as this agent sees them.",
		}, []string{"state"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "membership_events_total",
			Help: "Membership changes seen by this agent, by type.",
		}, []string{"type"}),
		probeRTT: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "probe_rtt_seconds",
			Help:    "Round-trip time of successful direct probes.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		healthScore: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "local_health_score",
			Help: "Lifeguard local health score: 0 is healthy; higher means this agent is missing acks and slows its own probing.",
		}),
		messagesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_sent_total",
			Help: "Gossip packets and streams sent.",
		}, []string{"transport"}),
		messagesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "messages_received_total",
			Help: "Gossip packets and streams received.",
		}, []string{"transport"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "sent_bytes_total",
			Help: "Gossip bytes sent.",
		}, []string{"transport"}),
		bytesReceived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "received_bytes_total",
			Help: "Gossip bytes received.",
		}, []string{"transport"}),
		metaErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "metadata_decode_errors_total",
			Help: "Peer metadata that did not decode and was ignored.",
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "malformed_messages_total",
			Help: "Application messages dropped as malformed, by reason.",
		}, []string{"reason"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "join_attempts_total",
			Help: "Attempts to join seed peers, by result.",
		}, []string{"result"}),
		keyringReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "keyring_reloads_total",
			Help: "Keyring file reloads that changed the keys, or failed (the keys in use are kept).",
		}, []string{"result"}),
		keyringOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "keyring_last_reload_successful",
			Help: "0 while the keyring file fails to reload (unreadable or invalid; the keys in use are kept), else 1, also with no keyring file.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "admission_refusals_total",
			Help: "Alive messages of peers refused by the admission check, by reason.",
		}, []string{"reason"}),
		expected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "expected_members",
			Help: "Size of the expected group that majorities are counted against: members seen and Nodes an agent ran on, less those left or deleted.",
		}),
		inTouch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "in_touch_members",
			Help: "Members of the expected group heard from directly within the isolation timeout, this agent included.",
		}),
		isolationPings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "isolation_pings_total",
			Help: "Pings sent to stay in touch with a majority of the group, by result.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{
		m.members, m.events, m.probeRTT, m.healthScore, m.messagesSent, m.messagesReceived,
		m.bytesSent, m.bytesReceived, m.metaErrors, m.malformed, m.joins, m.keyringReloads, m.keyringOK, m.refusals,
		m.expected, m.inTouch, m.isolationPings,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Start every series of a fixed set at zero so dashboards and rate()
	// see them before the first change.
	for i, s := range stateNames {
		m.byState[i] = m.members.WithLabelValues(s)
	}
	for i, e := range eventNames {
		m.byEvent[i] = m.events.WithLabelValues(e)
	}
	for _, t := range []string{transportPacket, transportStream} {
		m.messagesSent.WithLabelValues(t)
		m.messagesReceived.WithLabelValues(t)
		m.bytesSent.WithLabelValues(t)
		m.bytesReceived.WithLabelValues(t)
	}
	for _, r := range []string{reasonEmpty, reasonUnknownKind, reasonTruncated, reasonHandler} {
		m.malformed.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure"} {
		m.joins.WithLabelValues(r)
	}
	for _, r := range []string{"answered", "no_answer", "error"} {
		m.isolationPings.WithLabelValues(r)
	}
	m.keyringOK.Set(1)
	m.keyringReloads.WithLabelValues("changed")
	m.keyringReloads.WithLabelValues("failure")
	return m, nil
}

const (
	transportPacket = "packet"
	transportStream = "stream"

	reasonEmpty       = "empty"
	reasonUnknownKind = "unknown_kind"
	reasonTruncated   = "truncated"
	reasonHandler     = "rejected"
)

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

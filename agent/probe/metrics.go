package probe

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	metricsNamespace = "haagent"
	metricsSubsystem = "probe"
)

// runnerMetrics are the Runner's metrics. The check label takes the configured check names,
// a fixed set.
type runnerMetrics struct {
	success             *prometheus.GaugeVec
	duration            *prometheus.HistogramVec
	consecutiveFailures *prometheus.GaugeVec
	nodeReady           prometheus.Gauge
}

func newRunnerMetrics(reg prometheus.Registerer, checks []Check) (*runnerMetrics, error) {
	m := &runnerMetrics{
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "check_success",
			Help: "1 if the last run of the check succeeded, 0 if it failed.",
		}, []string{"check"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "check_duration_seconds",
			Help: "Duration of check runs, up to the check's timeout.",
			// From a loopback check (about a millisecond) up to a long timeout.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"check"}),
		consecutiveFailures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "check_consecutive_failures",
			Help: "Failed runs of the check since its last success.",
		}, []string{"check"}),
		nodeReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "node_ready",
			Help: "1 if every node check is passing (after thresholds), 0 otherwise.",
		}),
	}
	for _, c := range checks {
		m.success.WithLabelValues(c.Name).Set(0)
		m.consecutiveFailures.WithLabelValues(c.Name).Set(0)
		m.duration.WithLabelValues(c.Name)
	}
	if err := register(reg, m.success, m.duration, m.consecutiveFailures, m.nodeReady); err != nil {
		return nil, err
	}
	return m, nil
}

// peerMetrics are the PeerChecker's metrics.
type peerMetrics struct {
	duration prometheus.Histogram
	checks   *prometheus.CounterVec
}

func newPeerMetrics(reg prometheus.Registerer) (*peerMetrics, error) {
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "peer_check_duration_seconds",
		Help: "Duration of TCP connects to peers' kubelet port, up to the timeout.",
		// From a connect across a LAN up to the (short) peer timeout.
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	})
	m := &peerMetrics{
		duration: duration,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "peer_checks_total",
			Help: "Peer checks that ended with a connect attempt, by result.",
		}, []string{"result"}),
	}
	m.checks.WithLabelValues(peerReachable)
	m.checks.WithLabelValues(peerUnreachable)
	if err := register(reg, duration, m.checks); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers every collector or none: on a failure the ones already registered are
// taken back, so that a retry with a fixed registry starts clean. A nil registerer registers
// nothing.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("probe: metrics already registered (one Runner and one PeerChecker per registry): %w", err)
			}
			return fmt.Errorf("probe: register metrics: %w", err)
		}
	}
	return nil
}

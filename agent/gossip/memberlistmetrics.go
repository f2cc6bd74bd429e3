package gossip

import (
	"fmt"
	"math"
	"strings"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// MemberlistSink is a go-metrics sink for the figures memberlist reports
// about itself. memberlist sends them to go-metrics' process-wide sink
// under keys such as memberlist.probeNode, in the units go-metrics was set
// up with; the sink maps the few that matter onto haagent_gossip_* metrics
// with units in their names and ignores the rest (haagent's own gossip
// metrics already count members, events, packets and bytes).
//
// Install it with gometrics.NewGlobal once per process: memberlist has no
// per-instance sink, so all memberlists of a process report to it.
type MemberlistSink struct {
	// timerUnit is what one unit of a go-metrics timer sample is worth.
	timerUnit float64

	probe            prometheus.Histogram
	pushPull         prometheus.Histogram
	gossipRound      prometheus.Histogram
	degradedProbes   prometheus.Counter
	degradedTimeouts prometheus.Counter
	broadcastQueue   prometheus.Gauge
}

var _ gometrics.MetricSink = (*MemberlistSink)(nil)

// NewMemberlistSink registers the memberlist metrics on reg. timerUnit is
// the go-metrics TimerGranularity in force (time.Millisecond unless set
// otherwise): memberlist's durations arrive as multiples of it.
func NewMemberlistSink(reg prometheus.Registerer, timerUnit time.Duration) (*MemberlistSink, error) {
	if timerUnit <= 0 {
		return nil, fmt.Errorf("gossip: memberlist metrics: timer unit (%s) must be positive", timerUnit)
	}
	const ns, sub = "haagent", "gossip"
	s := &MemberlistSink{
		timerUnit: timerUnit.Seconds(),
		probe: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "probe_duration_seconds",
			Help: "Duration of memberlist's probe of one member: the direct ping, and the indirect pings and TCP fallback when it is not answered in time. " +
				"Most take one round trip; those near the probe interval are probes that needed help.",
			// A loopback round trip up to several probe intervals of the
			// default profile, which Lifeguard may stretch.
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		pushPull: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "push_pull_duration_seconds",
			Help:    "Duration of a full state exchange (push-pull, over TCP) with one member, at join and then every push-pull interval.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		gossipRound: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "gossip_round_duration_seconds",
			Help:    "Duration of one gossip round: queued broadcasts packed and sent to a few random members. Growing times point at a CPU-starved agent.",
			Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1},
		}),
		degradedProbes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "degraded_probes_total",
			Help: "Probes made with the probe interval stretched by Lifeguard, because this agent has been missing acks and nacks (local health score above 0).",
		}),
		degradedTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "degraded_suspicion_timeouts_total",
			Help: "Members declared dead when their suspicion timed out with fewer independent confirmations than Lifeguard expected.",
		}),
		broadcastQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "broadcast_queue_messages",
			Help: "Messages waiting in memberlist's broadcast queue (membership changes and haagent's votes and notices), sampled every 30 seconds.",
		}),
	}
	cs := []prometheus.Collector{s.probe, s.pushPull, s.gossipRound, s.degradedProbes, s.degradedTimeouts, s.broadcastQueue}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("gossip: memberlist metrics: %w", err)
		}
	}
	return s, nil
}

// memberlistKey returns what follows "memberlist" in key ("probeNode",
// "degraded.probe"), whatever go-metrics put before it (a service name, a
// type prefix), or "" for a key that is not memberlist's.
func memberlistKey(key []string) string {
	for i, k := range key {
		if k == "memberlist" {
			return strings.Join(key[i+1:], ".")
		}
	}
	return ""
}

// usable reports whether a sample can go into a Prometheus metric:
// counters must not go down, and NaN or infinities would poison a
// histogram's sum for good.
func usable(v float32) bool {
	f := float64(v)
	return !math.IsNaN(f) && !math.IsInf(f, 0) && f >= 0
}

// SetGauge implements gometrics.MetricSink.
func (s *MemberlistSink) SetGauge(key []string, val float32) {
	s.SetGaugeWithLabels(key, val, nil)
}

// SetGaugeWithLabels implements gometrics.MetricSink. memberlist's gauges
// (health score, node counts, local state size) are exported elsewhere or
// not at all.
func (s *MemberlistSink) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}

// EmitKey implements gometrics.MetricSink; memberlist emits no keys.
func (s *MemberlistSink) EmitKey([]string, float32) {}

// IncrCounter implements gometrics.MetricSink.
func (s *MemberlistSink) IncrCounter(key []string, val float32) {
	s.IncrCounterWithLabels(key, val, nil)
}

// IncrCounterWithLabels implements gometrics.MetricSink.
func (s *MemberlistSink) IncrCounterWithLabels(key []string, val float32, _ []gometrics.Label) {
	if !usable(val) {
		return
	}
	switch memberlistKey(key) {
	case "degraded.probe":
		s.degradedProbes.Add(float64(val))
	case "degraded.timeout":
		s.degradedTimeouts.Add(float64(val))
	}
}

// AddSample implements gometrics.MetricSink.
func (s *MemberlistSink) AddSample(key []string, val float32) {
	s.AddSampleWithLabels(key, val, nil)
}

// AddSampleWithLabels implements gometrics.MetricSink: timers (in timer
// units) and the broadcast queue depth.
func (s *MemberlistSink) AddSampleWithLabels(key []string, val float32, _ []gometrics.Label) {
	if !usable(val) {
		return
	}
	switch memberlistKey(key) {
	case "probeNode":
		s.probe.Observe(float64(val) * s.timerUnit)
	case "pushPullNode":
		s.pushPull.Observe(float64(val) * s.timerUnit)
	case "gossip":
		s.gossipRound.Observe(float64(val) * s.timerUnit)
	case "queue.broadcasts":
		s.broadcastQueue.Set(float64(val))
	}
}

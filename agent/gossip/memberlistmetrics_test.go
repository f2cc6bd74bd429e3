package gossip

import (
	"math"
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/haagent/haagent/internal/simnet"
)

func TestMemberlistSink_mapsKeys(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := NewMemberlistSink(reg, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// As go-metrics hands them over with a service name, and without.
	s.AddSample([]string{"haagent", "memberlist", "probeNode"}, 3)
	s.AddSample([]string{"memberlist", "probeNode"}, 2000)
	s.AddSample([]string{"memberlist", "pushPullNode"}, 40)
	s.AddSample([]string{"memberlist", "gossip"}, 0.05)
	s.AddSample([]string{"memberlist", "queue", "broadcasts"}, 7)
	s.IncrCounter([]string{"memberlist", "degraded", "probe"}, 1)
	s.IncrCounter([]string{"memberlist", "degraded", "probe"}, 1)
	s.IncrCounter([]string{"memberlist", "degraded", "timeout"}, 1)
	// Keys haagent does not map, and samples no metric can take.
	s.IncrCounter([]string{"memberlist", "udp", "sent"}, 1200)
	s.SetGauge([]string{"memberlist", "health", "score"}, 3)
	s.EmitKey([]string{"memberlist", "x"}, 1)
	s.IncrCounter([]string{"memberlist", "degraded", "probe"}, -1)
	s.AddSample([]string{"memberlist", "probeNode"}, float32(math.NaN()))
	s.AddSample([]string{"memberlist", "probeNode"}, float32(math.Inf(1)))
	s.AddSample([]string{"probeNode"}, 1)

	want := `
# HELP haagent_gossip_broadcast_queue_messages Messages waiting in memberlist's broadcast queue (membership changes and haagent's votes and notices), sampled every 30 seconds.
# TYPE haagent_gossip_broadcast_queue_messages gauge
haagent_gossip_broadcast_queue_messages 7
# HELP haagent_gossip_degraded_probes_total Probes made with the probe interval stretched by Lifeguard, because this agent has been missing acks and nacks (local health score above 0).
# TYPE haagent_gossip_degraded_probes_total counter
haagent_gossip_degraded_probes_total 2
# HELP haagent_gossip_degraded_suspicion_timeouts_total Members declared dead when their suspicion timed out with fewer independent confirmations than Lifeguard expected.
# TYPE haagent_gossip_degraded_suspicion_timeouts_total counter
haagent_gossip_degraded_suspicion_timeouts_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "haagent_gossip_broadcast_queue_messages",
		"haagent_gossip_degraded_probes_total", "haagent_gossip_degraded_suspicion_timeouts_total"); err != nil {
		t.Error(err)
	}
	for _, tc := range []struct {
		h         prometheus.Histogram
		name      string
		count     uint64
		sumSecond float64
	}{
		{s.probe, "probe", 2, 2.003},
		{s.pushPull, "push-pull", 1, 0.04},
		{s.gossipRound, "gossip round", 1, 0.00005},
	} {
		count, sum := histogram(t, tc.h)
		if count != tc.count || math.Abs(sum-tc.sumSecond) > 1e-6 {
			t.Errorf("%s: %d samples summing to %gs, want %d summing to %gs", tc.name, count, sum, tc.count, tc.sumSecond)
		}
	}
}

func histogram(t *testing.T, h prometheus.Histogram) (uint64, float64) {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	h.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func TestNewMemberlistSink_errors(t *testing.T) {
	if _, err := NewMemberlistSink(prometheus.NewRegistry(), 0); err == nil || err.Error() != "gossip: memberlist metrics: timer unit (0s) must be positive" {
		t.Errorf("timer unit 0: err = %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := NewMemberlistSink(reg, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMemberlistSink(reg, time.Millisecond); err == nil || !strings.HasPrefix(err.Error(), "gossip: memberlist metrics: ") {
		t.Errorf("second sink on one registry: err = %v", err)
	}
}

// TestMemberlistSink_memberlistReports runs a real group with the sink as
// go-metrics' global sink: the keys it maps are the ones this memberlist
// version sends.
func TestMemberlistSink_memberlistReports(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := NewMemberlistSink(reg, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	conf := gometrics.DefaultConfig("haagent")
	conf.EnableHostname, conf.EnableRuntimeMetrics = false, false
	if _, err := gometrics.NewGlobal(conf, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = gometrics.NewGlobal(gometrics.DefaultConfig(""), &gometrics.BlackholeSink{}) })
	startGroup(t, simnet.New(), 3, nil)
	waitFor(t, 10*time.Second, "probes and push-pulls to be measured", func() bool {
		probes, _ := histogram(t, s.probe)
		pushPulls, _ := histogram(t, s.pushPull)
		rounds, _ := histogram(t, s.gossipRound)
		return probes > 0 && pushPulls > 0 && rounds > 0
	})
}

func FuzzMemberlistSink(f *testing.F) {
	f.Add("memberlist.probeNode", float32(1.5))
	f.Add("haagent.memberlist.degraded.probe", float32(-3))
	f.Add("memberlist.queue.broadcasts", float32(math.Inf(-1)))
	s, err := NewMemberlistSink(prometheus.NewRegistry(), time.Millisecond)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string, val float32) {
		k := strings.Split(key, ".")
		s.AddSample(k, val)
		s.IncrCounter(k, val)
		s.SetGauge(k, val)
		s.EmitKey(k, val)
	})
}

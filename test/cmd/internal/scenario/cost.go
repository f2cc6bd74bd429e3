package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: 100 on every Linux ABI Go runs on.
const clockTicks = 100

// The gossip byte counters of agent/gossip, summed over their transport label.
const (
	gossipSentBytes     = "haagent_gossip_sent_bytes_total"
	gossipReceivedBytes = "haagent_gossip_received_bytes_total"
)

// CostSample is one reading of an agent process.
type CostSample struct {
	// Seconds since the window opened.
	Seconds float64 `json:"t"`
	// RSS, anonymous and file-backed resident memory, in KiB (VmRSS,
	// RssAnon, RssFile of /proc/<pid>/status).
	RSSKiB  int64 `json:"rssKiB"`
	AnonKiB int64 `json:"anonKiB"`
	FileKiB int64 `json:"fileKiB"`
	// CPUSeconds is utime+stime so far.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// AgentCost is what one agent used over a quiet window.
type AgentCost struct {
	Node        string  `json:"node"`
	RSSMeanMiB  float64 `json:"rssMeanMiB"`
	RSSMaxMiB   float64 `json:"rssMaxMiB"`
	AnonMeanMiB float64 `json:"anonMeanMiB"`
	FileMeanMiB float64 `json:"fileMeanMiB"`
	// CPU is CPU seconds per second over the window (1 = one core).
	CPU float64 `json:"cpuPerSecond"`
	// Gossip bytes per second sent and received (UDP and TCP).
	SentBytesPerSecond     float64      `json:"gossipSentBytesPerSecond"`
	ReceivedBytesPerSecond float64      `json:"gossipReceivedBytesPerSecond"`
	Samples                []CostSample `json:"samples"`
}

// MeasureCost samples every agent's process each interval for window:
// memory at every sample, CPU time and the gossip byte counters at the
// start and the end.
func (c *Cluster) MeasureCost(ctx context.Context, window, interval time.Duration) ([]AgentCost, error) {
	type start struct {
		at         time.Time
		sent, recv float64
	}
	starts := make([]start, len(c.Nodes))
	out := make([]AgentCost, len(c.Nodes))
	read := func(i int, t0 time.Time) error {
		a := c.Nodes[i].Agent()
		if a == nil {
			return fmt.Errorf("%s runs no agent", c.Nodes[i].Name())
		}
		s, err := ReadProc(a.PID())
		if err != nil {
			return fmt.Errorf("agent of %s: %w", c.Nodes[i].Name(), err)
		}
		s.Seconds = time.Since(t0).Seconds()
		out[i].Samples = append(out[i].Samples, s)
		return nil
	}
	bytes := func(ctx context.Context, a *cluster.Agent) (float64, float64, error) {
		m, err := a.Metrics(ctx)
		if err != nil {
			return 0, 0, err
		}
		return sumFamily(m, gossipSentBytes), sumFamily(m, gossipReceivedBytes), nil
	}
	t0 := time.Now()
	for i, n := range c.Nodes {
		out[i].Node = n.Name()
		if err := read(i, t0); err != nil {
			return nil, err
		}
		sent, recv, err := bytes(ctx, n.Agent())
		if err != nil {
			return nil, err
		}
		starts[i] = start{at: time.Now(), sent: sent, recv: recv}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for deadline := t0.Add(window); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-t.C:
		}
		for i := range c.Nodes {
			if err := read(i, t0); err != nil {
				return nil, err
			}
		}
	}
	for i, n := range c.Nodes {
		sent, recv, err := bytes(ctx, n.Agent())
		if err != nil {
			return nil, err
		}
		secs := time.Since(starts[i].at).Seconds()
		out[i].SentBytesPerSecond = (sent - starts[i].sent) / secs
		out[i].ReceivedBytesPerSecond = (recv - starts[i].recv) / secs
		summarizeCost(&out[i])
	}
	return out, nil
}

// summarizeCost fills the means, maxima and CPU rate from the samples.
func summarizeCost(a *AgentCost) {
	ss := a.Samples
	if len(ss) == 0 {
		return
	}
	var rss, anon, file float64
	for _, s := range ss {
		rss += float64(s.RSSKiB)
		anon += float64(s.AnonKiB)
		file += float64(s.FileKiB)
		a.RSSMaxMiB = max(a.RSSMaxMiB, float64(s.RSSKiB)/1024)
	}
	n := float64(len(ss)) * 1024
	a.RSSMeanMiB, a.AnonMeanMiB, a.FileMeanMiB = rss/n, anon/n, file/n
	if first, last := ss[0], ss[len(ss)-1]; last.Seconds > first.Seconds {
		a.CPU = (last.CPUSeconds - first.CPUSeconds) / (last.Seconds - first.Seconds)
	}
}

func sumFamily(m cluster.Metrics, name string) float64 {
	mf, ok := m[name]
	if !ok {
		return 0
	}
	var sum float64
	for _, s := range mf.GetMetric() {
		sum += s.GetCounter().GetValue()
	}
	return sum
}

// ReadProc reads a process's resident memory and CPU time from /proc.
func ReadProc(pid int) (CostSample, error) {
	var s CostSample
	if pid <= 0 {
		return s, errors.New("no process")
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	return parseProc(string(status), string(stat))
}

// parseProc reads VmRSS, RssAnon and RssFile (kB) out of a status file and
// utime+stime out of a stat file.
func parseProc(status, stat string) (CostSample, error) {
	var s CostSample
	fields := map[string]*int64{"VmRSS": &s.RSSKiB, "RssAnon": &s.AnonKiB, "RssFile": &s.FileKiB}
	found := 0
	for line := range strings.Lines(status) {
		key, val, ok := strings.Cut(line, ":")
		dst, want := fields[key]
		if !ok || !want {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(val), " ")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return s, fmt.Errorf("status: %s: %w", key, err)
		}
		*dst = v
		found++
	}
	if found != len(fields) {
		return s, errors.New("status: VmRSS, RssAnon or RssFile missing")
	}
	// The command name, in parentheses, may hold spaces: count fields after
	// its closing parenthesis. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return s, errors.New("stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("stat: %w", err)
	}
	s.CPUSeconds = float64(utime+stime) / clockTicks
	return s, nil
}

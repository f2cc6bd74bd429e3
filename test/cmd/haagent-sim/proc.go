package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the unit of the CPU times in /proc (USER_HZ), 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// usage is a snapshot of the process's and the machine's CPU counters.
type usage struct {
	wall        time.Time
	procCPU     float64 // seconds, user + system, this process
	machineBusy float64 // seconds, all cores, not idle
	machineAll  float64 // seconds, all cores
}

func readUsage() usage {
	u := usage{wall: time.Now()}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		u.procCPU, _ = parseProcStat(b)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		u.machineBusy, u.machineAll, _ = parseMachineStat(b)
	}
	return u
}

// parseProcStat returns utime + stime of a /proc/<pid>/stat, in seconds.
func parseProcStat(b []byte) (float64, error) {
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short stat line %q", b)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad utime or stime in %q", b)
	}
	return float64(ut+st) / clockTicks, nil
}

// parseMachineStat returns the busy and total CPU seconds of all cores
// from /proc/stat. Idle and iowait are not busy.
func parseMachineStat(b []byte) (busy, total float64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("no cpu line in /proc/stat")
	}
	var idle uint64
	var sum uint64
	// user nice system idle iowait irq softirq steal; guest time is
	// already in user.
	for i, s := range f[1:] {
		if i >= 8 {
			break
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		sum += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return float64(sum-idle) / clockTicks, float64(sum) / clockTicks, nil
}

// rssBytes returns VmRSS and VmHWM (the peak) of this process.
func rssBytes() (rss, peak uint64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	return parseStatusRSS(b)
}

// parseStatusRSS reads VmRSS and VmHWM from a /proc/<pid>/status.
func parseStatusRSS(b []byte) (rss, peak uint64) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	return rss, peak
}

// phaseUsage is what one phase of a run cost.
type phaseUsage struct {
	Phase     string  `json:"phase"`
	WallS     float64 `json:"wall_seconds"`
	CPUS      float64 `json:"cpu_seconds"`
	Cores     float64 `json:"cpu_cores"`        // CPU seconds per wall second
	MachineCP float64 `json:"machine_busy"`     // fraction of all cores busy, any process
	LagP50MS  float64 `json:"timer_lag_p50_ms"` // lateness of a 10 ms sleep
	LagP99MS  float64 `json:"timer_lag_p99_ms"`
	LagMaxMS  float64 `json:"timer_lag_max_ms"`
	RSSBytes  uint64  `json:"rss_bytes_at_end"`
	Starved   bool    `json:"cpu_starved"`
}

// lagSampler sleeps 10 ms again and again and keeps how late it woke: on a
// CPU-starved process timers fire late, and so do memberlist's probes.
type lagSampler struct {
	mu      sync.Mutex
	samples []time.Duration
	stop    chan struct{}
	done    chan struct{}
}

const lagPeriod = 10 * time.Millisecond

func startLagSampler() *lagSampler {
	s := &lagSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			t0 := time.Now()
			select {
			case <-s.stop:
				return
			case <-time.After(lagPeriod):
			}
			late := time.Since(t0) - lagPeriod
			s.mu.Lock()
			s.samples = append(s.samples, late)
			s.mu.Unlock()
		}
	}()
	return s
}

// take returns the samples since the last take.
func (s *lagSampler) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

func (s *lagSampler) close() { close(s.stop); <-s.done }

// meter measures one phase.
type meter struct {
	name string
	u0   usage
	lag  *lagSampler
}

func beginPhase(name string, lag *lagSampler) *meter {
	lag.take()
	return &meter{name: name, u0: readUsage(), lag: lag}
}

func (m *meter) end() phaseUsage {
	u1 := readUsage()
	p := phaseUsage{Phase: m.name, WallS: u1.wall.Sub(m.u0.wall).Seconds(), CPUS: u1.procCPU - m.u0.procCPU}
	if p.WallS > 0 {
		p.Cores = p.CPUS / p.WallS
	}
	if d := u1.machineAll - m.u0.machineAll; d > 0 {
		p.MachineCP = (u1.machineBusy - m.u0.machineBusy) / d
	}
	lags := m.lag.take()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	if len(lags) > 0 {
		p.LagP50MS = ms(lags[rank(len(lags), 0.50)])
		p.LagP99MS = ms(lags[rank(len(lags), 0.99)])
		p.LagMaxMS = ms(lags[len(lags)-1])
	}
	p.RSSBytes, _ = rssBytes()
	p.Starved = starved(p)
	return p
}

// starved says whether a phase ran short of CPU: the process used nearly
// all the cores it may use, or its timers fired late by half the fast
// profile's probe timeout or more. A busy machine alone is not enough: the
// simulation may still get what it needs, which the timer lag tells.
func starved(p phaseUsage) bool {
	procs := float64(runtime.GOMAXPROCS(0))
	return p.Cores >= 0.85*procs || p.LagP99MS >= 50
}

// rank is the index of the p-quantile of n sorted samples (nearest rank).
func rank(n int, p float64) int {
	i := int(math.Ceil(float64(n)*p)) - 1
	return max(0, min(i, n-1))
}

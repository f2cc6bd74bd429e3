package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of the CPU times in /proc (USER_HZ), 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// usage is a snapshot of the process's and the machine's CPU counters.
type usage struct {
	wall        time.Time // real, not the simulated clock
	procCPU     float64   // seconds, user + system, this process
	machineBusy float64   // seconds, all cores, not idle
	machineAll  float64   // seconds, all cores
}

func readUsage() usage {
	u := usage{wall: wallNow()}
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

// wallNow is the real time, read from the kernel. Inside a synctest
// bubble time.Now is the bubble's fake clock; the cost of a phase in wall
// time must be read past it.
func wallNow() time.Time {
	var tv syscall.Timeval
	if err := syscall.Gettimeofday(&tv); err != nil {
		return time.Now()
	}
	return time.Unix(tv.Sec, tv.Usec*1000)
}

// phaseUsage is what one phase of a run cost. Virtual seconds are the
// simulated (synctest) clock's; wall and CPU seconds are the process's
// real ones.
type phaseUsage struct {
	Phase     string  `json:"phase"`
	VirtualS  float64 `json:"virtual_seconds"`
	WallS     float64 `json:"wall_seconds"`
	CPUS      float64 `json:"cpu_seconds"`
	Cores     float64 `json:"cpu_cores"`    // CPU seconds per wall second
	MachineCP float64 `json:"machine_busy"` // fraction of all cores busy, any process
	// CPUPerVirtualS is CPU seconds per simulated second: what the
	// members of the phase would cost if the simulation's overhead were
	// nothing (an estimate: it includes the simulator's own work).
	CPUPerVirtualS float64 `json:"cpu_seconds_per_virtual_second"`
	RSSBytes       uint64  `json:"rss_bytes_at_end"`
}

// meter measures one phase.
type meter struct {
	name string
	u0   usage
	v0   time.Time
}

func beginPhase(name string) *meter {
	return &meter{name: name, u0: readUsage(), v0: time.Now()}
}

func (m *meter) end() phaseUsage {
	u1 := readUsage()
	p := phaseUsage{Phase: m.name, VirtualS: time.Since(m.v0).Seconds(), WallS: u1.wall.Sub(m.u0.wall).Seconds(), CPUS: u1.procCPU - m.u0.procCPU}
	if p.WallS > 0 {
		p.Cores = p.CPUS / p.WallS
	}
	if p.VirtualS > 0 {
		p.CPUPerVirtualS = p.CPUS / p.VirtualS
	}
	if d := u1.machineAll - m.u0.machineAll; d > 0 {
		p.MachineCP = (u1.machineBusy - m.u0.machineBusy) / d
	}
	p.RSSBytes, _ = rssBytes()
	return p
}

// rank is the index of the p-quantile of n sorted samples (nearest rank).
func rank(n int, p float64) int {
	i := int(math.Ceil(float64(n)*p)) - 1
	return max(0, min(i, n-1))
}

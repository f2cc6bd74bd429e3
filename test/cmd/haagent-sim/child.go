package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// Each run is a process of its own: the memory, the goroutines and the CPU
// time of one size are then its own, and a size that exhausts memory takes
// only its own run down. The parent starts it with -run-one and reads its
// result back.

// childArgs are the flags of the process that runs spec alone.
func (o options) childArgs(spec runSpec, timeout time.Duration, out string) []string {
	args := []string{
		"-run-one", out,
		"-n", strconv.Itoa(spec.n),
		"-profiles", spec.profile,
		"-loss", strconv.FormatFloat(spec.loss, 'g', -1, 64),
		"-delay", o.delay.String(),
		"-crashes", strconv.Itoa(o.crashes),
		"-coordinator-crashes", strconv.Itoa(o.coordinatorCrashes),
		"-quiet", o.quiet.String(),
		"-settle", o.settle.String(),
		"-timeout", timeout.String(),
		"-batch", strconv.Itoa(o.batch),
		"-discovery", o.discovery,
		"-pace", o.pace,
		"-converge-timeout", o.convergeTimeout.String(),
		"-crash-timeout", o.crashTimeout.String(),
		"-decide-tick", o.decideTick.String(),
		"-max-rss-mib", strconv.Itoa(o.maxRSSMiB),
		"-gc-percent", strconv.Itoa(o.gcPercent),
		"-json", "",
		"-delay-spread", o.delaySpread.String(),
		"-jitter", o.jitter.String(),
		"-stalls", strconv.FormatFloat(o.stallsPerHour, 'g', -1, 64),
		"-stall-min", o.stallMin.String(),
		"-stall-max", o.stallMax.String(),
		"-probe-interval", o.probeInterval.String(),
		"-probe-timeout", o.probeTimeout.String(),
		"-gossip-interval", o.gossipInterval.String(),
		"-push-pull-interval", o.pushPull.String(),
		"-suspicion-mult", strconv.Itoa(o.suspicionMult),
		"-indirect-checks", strconv.Itoa(o.indirectChecks),
	}
	if o.cpuProfile != "" {
		args = append(args, "-cpuprofile", o.cpuProfile+"."+spec.tag())
	}
	if o.memProfile != "" {
		args = append(args, "-memprofile", o.memProfile+"."+spec.tag())
	}
	return args
}

func (s runSpec) tag() string {
	return fmt.Sprintf("n%d-%s-loss%g", s.n, s.profile, s.loss)
}

// runChild runs spec in a process of its own and returns its result. When
// ctx ends, or -run-timeout passes, or its resident memory
// passes 1.25 × -max-rss-mib (the child stops itself at -max-rss-mib, unless
// it is too starved to notice), the process is asked to stop (SIGTERM) and
// reports what it has; if it does not within a minute it is killed. The
// child's CPU time and peak RSS are read from its rusage.
func runChild(parent context.Context, o options, spec runSpec, p *progress, stderr io.Writer) runResult {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	if o.runTimeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, o.runTimeout, fmt.Errorf("the -run-timeout of %s passed", o.runTimeout))
		defer cancel()
	}
	fail := func(err error) runResult {
		p.printf("%s: %v", spec, err)
		r := skipped(o, spec, err.Error())
		return r
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp("", "haagent-sim-run-*.json")
	if err != nil {
		return fail(err)
	}
	out := f.Name()
	f.Close()
	defer os.Remove(out)
	timeout := o.timeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return fail(errors.New("not started: no time left"))
	}
	cmd := exec.Command(exe, o.childArgs(spec, timeout, out)...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	started := wallNow()
	if err := cmd.Start(); err != nil {
		return fail(fmt.Errorf("start the run's process: %w", err))
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var stopped error // why the parent stopped the child, if it did
	rssLimit := uint64(o.maxRSSMiB) << 20 * 5 / 4
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-ctx.Done():
			stopped = context.Cause(ctx)
		case <-tick.C:
			if rss := processRSS(cmd.Process.Pid); rss > rssLimit {
				stopped = fmt.Errorf("its resident memory %d MiB passed 1.25 × -max-rss-mib", rss>>20)
			}
		}
		if stopped != nil {
			p.printf("%s: stopping the run's process: %v", spec, stopped)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				err = <-done
			}
			break
		}
	}
	wall := wallNow().Sub(started)
	b, rerr := os.ReadFile(out)
	var r runResult
	if rerr != nil || len(b) == 0 || json.Unmarshal(b, &r) != nil {
		if err == nil {
			err = errors.New("it wrote no result")
		}
		if stopped != nil {
			err = fmt.Errorf("%v, after it was stopped: %v", err, stopped)
		}
		r = fail(fmt.Errorf("the run's process failed: %v", err))
	} else if stopped != nil && r.Stopped == "" {
		r.Stopped = "stopped by the parent: " + stopped.Error()
	}
	r.ProcessWallS = wall.Seconds()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru != nil {
		r.ProcessCPUS = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		r.ProcessMaxRSSBytes = uint64(ru.Maxrss) << 10 // KiB on Linux
	}
	return r
}

// processRSS is the resident memory of process pid, 0 if unknown.
func processRSS(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	rss, _ := parseStatusRSS(b)
	return rss
}

// runOne is the child's side: one run, its result to o.runOne. The run
// goes through testing.Main, the standard library's entry point for
// programs that run tests themselves, because testing/synctest needs a
// *testing.T; it exits the process, with status 1 if the run failed.
// Everything the run does outside its bubble happens here: the CPU
// profile, and carrying a stop (SIGTERM, -timeout) into the bubble, which
// may wait on nothing outside it.
func runOne(ctx context.Context, o options, stderr io.Writer) error {
	if len(o.sizes) != 1 || len(o.profiles) != 1 || len(o.losses) != 1 {
		return errors.New("-run-one takes one size, one profile and one loss rate")
	}
	stop := &stopSignal{}
	go func() { <-ctx.Done(); stop.set(context.Cause(ctx)) }()
	spec := runSpec{n: o.sizes[0], profile: o.profiles[0], loss: o.losses[0]}
	run := func(t *testing.T) {
		if o.cpuProfile != "" {
			f, err := os.Create(o.cpuProfile)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		// The members' garbage is the simulation's cost, not the
		// protocol's: collect less often, within -max-rss-mib.
		debug.SetGCPercent(o.gcPercent)
		var r runResult
		synctest.Test(t, func(*testing.T) {
			r = simulate(o, spec, &progress{w: stderr, start: wallNow()}, stop)
		})
		b, err := json.Marshal(r)
		if err == nil {
			err = os.WriteFile(o.runOne, b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// testing.Main parses the process's arguments as test flags: give it
	// only the one that picks the run.
	os.Args = []string{os.Args[0], "-test.run=^TestVirtualRun$"}
	testing.Main(regexp.MatchString, []testing.InternalTest{{Name: "TestVirtualRun", F: run}}, nil, nil)
	return nil
}

// stopSignal carries a request to stop from outside a run's bubble into
// it: the run polls it (see guard), since waiting on a channel from
// outside would keep the bubble's clock from moving.
type stopSignal struct {
	mu  sync.Mutex
	why error
}

func (s *stopSignal) set(why error) {
	s.mu.Lock()
	if s.why == nil {
		s.why = why
	}
	s.mu.Unlock()
}

func (s *stopSignal) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

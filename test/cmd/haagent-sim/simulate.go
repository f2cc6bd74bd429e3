package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haagent/haagent/agent/agreement"
	"github.com/haagent/haagent/agent/gossip"
)

// Phases of a run.
const (
	phaseConverge = "converge"
	phaseQuiet    = "quiet"
	phaseCrash    = "crash"
)

// runSpec names one run.
type runSpec struct {
	n       int
	profile string
	loss    float64
}

func (s runSpec) String() string {
	return fmt.Sprintf("N=%d %s loss=%g%%", s.n, s.profile, 100*s.loss)
}

// sim is one run in progress.
type sim struct {
	o      options
	spec   runSpec
	timing gossip.Profile
	p      *progress
	lag    *lagSampler
	c      *cluster
	coord  *coordinator
	r      *runResult
}

// suspicionTimeouts are memberlist's shortest and longest (Lifeguard, no
// confirmation) suspicion timeouts for n members.
func suspicionTimeouts(p gossip.Profile, n int) (lo, hi time.Duration) {
	scale := math.Max(1, math.Log10(float64(n)))
	lo = time.Duration(float64(p.SuspicionMult) * scale * float64(p.ProbeInterval))
	return lo, 6 * lo // the agent sets SuspicionMaxTimeoutMult to 6
}

// crashTimeout is how long one crash is waited for: the longest suspicion
// timeout, ten probe rounds, two vote repeats and 10 s of slack, unless
// -crash-timeout says otherwise.
func crashTimeout(o options, p gossip.Profile, n int) time.Duration {
	if o.crashTimeout > 0 {
		return o.crashTimeout
	}
	_, hi := suspicionTimeouts(p, n)
	return hi + 10*p.ProbeInterval + 2*agreement.DefaultConfig().RepeatInterval + 10*time.Second
}

// simulate runs one size and profile and returns what it measured. It
// returns when the run is done or ctx ends, after every member stopped.
func simulate(parent context.Context, o options, spec runSpec, p *progress) runResult {
	timing, _ := gossip.LookupProfile(spec.profile)
	r := newRunResult(o, spec, timing)
	r.RSSAtStartBytes, _ = rssBytes()
	r.LoadAtStart = loadAverage()
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	s := &sim{o: o, spec: spec, timing: timing, p: p, lag: startLagSampler(), c: newCluster(o, spec), r: &r}
	defer s.lag.close()

	var peakRSS atomic.Uint64
	guardDone := make(chan struct{})
	guardCtx, stopGuard := context.WithCancel(ctx)
	go func() { defer close(guardDone); guardRSS(guardCtx, cancel, o.maxRSSMiB, &peakRSS) }()

	var coordWG sync.WaitGroup
	coordCtx, stopCoord := context.WithCancel(ctx)
	p.printf("%s: starting with %d MiB resident (protocol detection bound %s, suspicion timeout %s to %s)", spec, r.RSSAtStartBytes>>20,
		time.Duration(r.DetectionBoundS*float64(time.Second)).Round(time.Millisecond),
		time.Duration(r.SuspicionMinS*float64(time.Second)).Round(time.Millisecond),
		time.Duration(r.SuspicionMaxS*float64(time.Second)).Round(time.Millisecond))

	err := s.converge(ctx, func() {
		coordWG.Add(1)
		go func() { defer coordWG.Done(); s.coord.run(coordCtx) }()
	})
	if o.memProfile != "" {
		// The group's formation is where memory peaks: a profile of the
		// heap then, whether it converged or was stopped.
		if err := writeHeapProfile(o.memProfile + ".converge"); err != nil {
			p.printf("%s: heap profile: %v", spec, err)
		}
	}
	if err == nil {
		err = s.quiet(ctx)
	}
	if err == nil {
		err = s.crashes(ctx)
	}
	if err != nil {
		r.Stopped = err.Error()
		p.printf("%s: stopped: %s", spec, r.Stopped)
	}

	stopCoord()
	coordWG.Wait()
	stopGuard()
	<-guardDone
	if s.coord != nil {
		r.WrongActions = s.coord.wrongActions()
		rounds, mean, slowest := s.coord.stats()
		r.DecideRounds, r.DecideMeanMS, r.DecideMaxMS = rounds, ms(mean), ms(slowest)
	}
	r.WrongCount = len(r.WrongActions)
	r.False, r.FalseSamples = s.c.rec.falseByPhase()
	r.PacketsDelivered, r.PacketsDropped = s.c.net.Stats()
	r.PacketsOverflowed = s.c.net.Overflowed()
	r.PeakRSSBytes = peakRSS.Load()
	p.printf("%s: stopping %d members", spec, len(s.c.members))
	r.NotStopped = s.c.stop(30 * time.Second)
	r.summarise()
	r.LoadAtEnd = loadAverage()
	p.printf("%s: done: converged %v in %.1fs; detection (half) p50 %s p99 %s; decision p50 %s p99 %s; wrong actions %d",
		spec, r.Converged, r.ConvergenceS, fmtS(r.Detection[keyHalf].P50), fmtS(r.Detection[keyHalf].P99),
		fmtS(r.Detection[keyDecision].P50), fmtS(r.Detection[keyDecision].P99), r.WrongCount)
	return r
}

// guardRSS keeps the peak resident memory of the process and stops the run
// when it passes the limit: a run that would exhaust the machine's memory
// must not take the machine down with it.
func guardRSS(ctx context.Context, stop context.CancelCauseFunc, limitMiB int, peak *atomic.Uint64) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	limit := uint64(limitMiB) << 20
	for {
		rss, _ := rssBytes()
		if rss > peak.Load() {
			peak.Store(rss)
		}
		if rss > limit {
			stop(fmt.Errorf("resident memory %d MiB passed -max-rss-mib %d", rss>>20, limitMiB))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// endPhase records what the phase cost.
func (s *sim) endPhase(m *meter) {
	s.r.Phases = append(s.r.Phases, m.end())
}

// waitUntil polls cond until it holds, the deadline passes or ctx ends,
// and reports progress every 10 s.
func (s *sim) waitUntil(ctx context.Context, deadline time.Time, what string, cond func() bool, status func() string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (%s)", what, status())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("while waiting for %s (%s): %w", what, status(), context.Cause(ctx))
		case <-t.C:
		}
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			s.p.printf("%s: waiting for %s: %s", s.spec, what, status())
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// converge starts the members batch by batch; a batch starts when the
// previous one is seen (-pace: by all but a few of the members started, and
// the simulation's CPU has settled; or by the first member). It then waits
// until every member sees every other alive (or suspect). onCoordinator is
// called once the first member, which also plays the coordinator, exists.
func (s *sim) converge(ctx context.Context, onCoordinator func()) error {
	m := beginPhase(phaseConverge, s.lag)
	defer s.endPhase(m)
	n := s.spec.n
	rec := s.c.rec
	start := time.Now()
	deadline := start.Add(s.o.convergeTimeout)
	last := readUsage()
	for i := 0; i < n; {
		end := min(i+s.o.batch, n)
		for ; i < end; i++ {
			mem, err := s.c.start(i)
			if err != nil {
				return fmt.Errorf("start %s: %w", memberName(i), err)
			}
			if i == 0 {
				if s.coord, err = newCoordinator(mem, rec, s.o.decideTick); err != nil {
					return err
				}
				onCoordinator()
			}
		}
		what := "the first member to see the batch"
		cond := func() bool { return rec.knownBy(0) >= end }
		status := func() string { return fmt.Sprintf("the first member sees %d of %d started", rec.knownBy(0), end) }
		if s.o.pace == "all" {
			// Every member started so far must have taken the batch in
			// before the next starts: a group of hundreds that is given
			// members faster than it spreads them piles up alive messages
			// in every member's queues, and one process playing them all
			// runs short of CPU and memory. A member or two may miss one of the others until a push-pull
			// repairs it, tens of seconds later: that is the protocol's to
			// measure in the convergence time, not a reason to hold the
			// start of the rest.
			want := end - 2 - end/100
			what = "all but 2 + 1% of the members started to see the batch"
			cond = func() bool { return rec.knownBy(0) >= end && rec.fullViews(end) >= want }
			status = func() string {
				return fmt.Sprintf("%d of %d started see them all, the smallest view holds %d; the first member sees %d",
					rec.fullViews(end), end, rec.minKnown(end), rec.knownBy(0))
			}
		}
		if err := s.waitUntil(ctx, deadline, what, cond, status); err != nil {
			return err
		}
		if s.o.pace == "all" && end < n {
			if err := s.settle(ctx, deadline); err != nil {
				return err
			}
		}
		if end%(5*s.o.batch) == 0 || end == n {
			u := readUsage()
			rss, _ := rssBytes()
			s.p.printf("%s: %d members started in %.1fs (%.2f cores since the last line, %d MiB resident)", s.spec, end, time.Since(start).Seconds(),
				(u.procCPU-last.procCPU)/u.wall.Sub(last.wall).Seconds(), rss>>20)
			last = u
		}
	}
	s.r.StartS = time.Since(start).Seconds()
	views := func() string {
		return fmt.Sprintf("the smallest view holds %d of %d members", rec.minKnown(n), n)
	}
	err := s.waitUntil(ctx, deadline, "every member to see every other", func() bool { return rec.minKnown(n) >= n }, views)
	s.r.ConvergedMinView = rec.minKnown(n)
	if err != nil {
		return err
	}
	s.r.Converged = true
	s.r.ConvergenceS = time.Since(start).Seconds()
	s.p.printf("%s: converged in %.1fs", s.spec, s.r.ConvergenceS)
	return nil
}

// settleCores is the share of GOMAXPROCS the simulation may use before
// the next batch starts, and settleMax the longest it waits for that.
const (
	settleCores  = 0.5
	settleWindow = 3 * time.Second
	settleMax    = 20 * time.Second
)

// settle waits, after a batch is seen, until the process uses less than
// settleCores of its cores over settleWindow, or settleMax has passed. The
// members seen are not done with them: each new member passes on the alive
// message of every member it learned from its joins, and every member
// passes on the new member's, each several times over, for tens of
// seconds at a thousand members. Started before that flood ebbs, the next
// batch adds its own, and one process playing every member runs short of
// CPU: probes and refutations are handled late, live members are declared
// dead, and their votes and refutations add work until nothing converges.
// Real members each have their own CPU; here only the pace of start-up is
// changed, not the protocol.
func (s *sim) settle(ctx context.Context, deadline time.Time) error {
	limit := settleCores * float64(runtime.GOMAXPROCS(0))
	until := time.Now().Add(settleMax)
	prev := readUsage()
	for {
		if err := sleep(ctx, settleWindow); err != nil {
			return err
		}
		u := readUsage()
		cores := (u.procCPU - prev.procCPU) / u.wall.Sub(prev.wall).Seconds()
		prev = u
		if cores < limit || u.wall.After(until) || u.wall.After(deadline) {
			return nil
		}
	}
}

// quiet watches the group while nothing fails.
func (s *sim) quiet(ctx context.Context) error {
	s.c.rec.setPhase(phaseQuiet)
	s.coord.setPhase(phaseQuiet)
	if s.o.quiet == 0 {
		return nil
	}
	s.p.printf("%s: quiet period of %s", s.spec, s.o.quiet)
	m := beginPhase(phaseQuiet, s.lag)
	live := s.c.live()
	before, t0 := countAll(live), time.Now()
	err := sleep(ctx, s.o.quiet)
	after, t1 := countAll(live), time.Now()
	s.endPhase(m)
	s.r.Traffic = append(s.r.Traffic, trafficBetween(phaseQuiet, live, before, after, t1.Sub(t0)))
	if s.o.memProfile != "" {
		if err := writeHeapProfile(s.o.memProfile); err != nil {
			s.p.printf("%s: heap profile: %v", s.spec, err)
		}
	}
	return err
}

// crashes crashes members one after the other and waits, for each, until
// every survivor sees it dead and the decision core has started its
// failover, or the crash timeout passes.
func (s *sim) crashes(ctx context.Context) error {
	s.c.rec.setPhase(phaseCrash)
	s.coord.setPhase(phaseCrash)
	if s.o.crashes == 0 {
		return nil
	}
	m := beginPhase(phaseCrash, s.lag)
	live := s.c.live()
	before, t0 := countAll(live), time.Now()
	defer func() {
		survivors := s.c.live()
		after := countAll(survivors)
		s.endPhase(m)
		s.r.Traffic = append(s.r.Traffic, trafficBetween(phaseCrash, survivors, before, after, time.Since(t0)))
	}()
	limit := crashTimeout(s.o, s.timing, s.spec.n)
	s.r.CrashTimeoutS = limit.Seconds()
	for k := 0; k < s.o.crashes; k++ {
		var candidates []*member
		for _, mem := range s.c.live() {
			if mem.idx != 0 { // the first member is the coordinator
				candidates = append(candidates, mem)
			}
		}
		if len(candidates) == 0 {
			return errors.New("no member left to crash")
		}
		victim := candidates[rand.N(len(candidates))]
		at := s.c.crash(victim)
		survivors := len(s.c.live())
		cs := crashSample{Victim: victim.name, AtS: at.Sub(s.c.rec.start).Seconds(), Survivors: survivors}
		deadline := at.Add(limit)
		t := time.NewTicker(20 * time.Millisecond)
		var err error
	wait:
		for {
			_, decided := s.coord.startedAt(victim.name)
			if s.c.rec.deadSeen(victim.idx) >= survivors && decided {
				break
			}
			if time.Now().After(deadline) {
				cs.TimedOut = true
				break
			}
			select {
			case <-ctx.Done():
				err = context.Cause(ctx)
				break wait
			case <-t.C:
			}
		}
		t.Stop()
		lat := s.c.rec.deadLatencies(victim.idx)
		cs.SeenDead = len(lat)
		cs.DeadBeforeCrash = s.c.rec.deadBeforeCrash(victim.idx)
		for _, d := range lat {
			cs.ObserversS = append(cs.ObserversS, d.Seconds())
		}
		if len(lat) > 0 {
			cs.FirstS = ptr(lat[0].Seconds())
		}
		if half := (survivors + 1) / 2; len(lat) >= half {
			cs.HalfS = ptr(lat[half-1].Seconds())
		}
		if len(lat) >= survivors {
			cs.AllS = ptr(lat[survivors-1].Seconds())
		}
		if st, ok := s.coord.startedAt(victim.name); ok {
			cs.DecisionS = ptr(st.Sub(at).Seconds())
		} else {
			cs.Held = s.coord.heldReason(victim.name)
			cs.Votes = s.coord.votesAbout(victim.name)
		}
		s.r.Crashes = append(s.r.Crashes, cs)
		s.p.printf("%s: crash %d/%d %s: first %s, half %s, all %s (%d/%d), decision %s%s", s.spec, k+1, s.o.crashes, victim.name,
			fmtS(cs.FirstS), fmtS(cs.HalfS), fmtS(cs.AllS), cs.SeenDead, survivors, fmtS(cs.DecisionS), timedOut(cs.TimedOut, limit))
		if err != nil {
			return err
		}
		if err := sleep(ctx, 2*s.timing.ProbeInterval); err != nil {
			return err
		}
	}
	return nil
}

func timedOut(b bool, limit time.Duration) string {
	if !b {
		return ""
	}
	return fmt.Sprintf(" — gave up after %s", limit)
}

func ptr(f float64) *float64 { return &f }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtS(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fs", *f)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

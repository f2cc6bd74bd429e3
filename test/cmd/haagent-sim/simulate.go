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

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/haagent/haagent/agent/agreement"
	"github.com/haagent/haagent/agent/gossip"
)

// Phases of a run.
const (
	phaseConverge = "converge"
	phaseQuiet    = "quiet"
	phaseCrash    = "crash"
	// phaseHolderCrash is the crash phase's part that crashes the Lease
	// holder; membership events are counted in phaseCrash.
	phaseHolderCrash = "lease-holder-crash"
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
	c      *cluster
	api    *fakeAPI
	coords *coordinators
	coord  *coordinator // the decision core alone, on the Lease holder's view
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
// must run inside a synctest bubble (see runOne): it creates every member,
// the network and the decision core there, and returns when the run is
// done or stop is set, after every member stopped.
func simulate(o options, spec runSpec, p *progress, stop *stopSignal) runResult {
	// client-go's leader election and Event broadcaster log through
	// klog; the members log nothing either.
	klog.SetLogger(logr.Discard())
	timing := gossipConfig(o, "sim", spec.profile, spec.n).Effective()
	r := newRunResult(o, spec, timing)
	r.RSSAtStartBytes, _ = rssBytes()
	r.LoadAtStart = loadAverage()
	v0, w0 := time.Now(), wallNow()
	p = &progress{w: p.w, start: p.start, vstart: v0}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s := &sim{o: o, spec: spec, timing: timing, p: p, c: newCluster(o, spec), r: &r}
	names := make([]string, spec.n)
	for i := range names {
		names[i] = memberName(i)
	}
	s.api = newFakeAPI(names, s.c.rec)
	s.coords = newCoordinators(o, spec.n, s.api)
	s.c.spared = s.coords.runs
	var err error
	if s.coord, err = newCoordinator(s.coords.holder, s.c.rec, o.decideTick); err != nil {
		r.Stopped = err.Error()
		return r
	}

	var peakRSS atomic.Uint64
	guardDone := make(chan struct{})
	guardCtx, stopGuard := context.WithCancel(ctx)
	go func() { defer close(guardDone); guard(guardCtx, cancel, stop, o.maxRSSMiB, &peakRSS) }()

	var coordWG sync.WaitGroup
	coordCtx, stopCoord := context.WithCancel(ctx)
	p.printf("%s: starting with %d MiB resident (protocol detection bound %s, suspicion timeout %s to %s)", spec, r.RSSAtStartBytes>>20,
		time.Duration(r.DetectionBoundS*float64(time.Second)).Round(time.Millisecond),
		time.Duration(r.SuspicionMinS*float64(time.Second)).Round(time.Millisecond),
		time.Duration(r.SuspicionMaxS*float64(time.Second)).Round(time.Millisecond))

	coordWG.Add(1)
	go func() { defer coordWG.Done(); s.coord.run(coordCtx) }()
	err = s.converge(ctx)
	if o.memProfile != "" {
		// The group's formation is where memory peaks: a profile of the
		// heap then, whether it converged or was stopped.
		if err := writeHeapProfile(o.memProfile + ".converge"); err != nil {
			p.printf("%s: heap profile: %v", spec, err)
		}
	}
	if err == nil {
		err = s.settle(ctx)
	}
	var stalls *staller
	if err == nil && o.stallsPerHour > 0 {
		stalls = startStalls(ctx, s.c, o)
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
	if stalls != nil {
		r.Stalls = stalls.stop()
	}

	stopCoord()
	coordWG.Wait()
	s.coords.stop()
	stopGuard()
	<-guardDone
	r.WrongActions = append(s.coord.wrongActions(), s.api.wrongActions()...)
	rounds, mean, slowest := s.coord.stats()
	r.DecideRounds, r.DecideMeanMS, r.DecideMaxMS = rounds, ms(mean), ms(slowest)
	r.WrongCount = len(r.WrongActions)
	r.False, r.FalseSamples = s.c.rec.falseByPhase()
	r.PacketsDelivered, r.PacketsDropped = s.c.net.Stats()
	r.PacketsOverflowed = s.c.net.Overflowed()
	r.PeakRSSBytes = peakRSS.Load()
	r.VirtualS, r.WallS = time.Since(v0).Seconds(), wallNow().Sub(w0).Seconds()
	p.printf("%s: stopping %d members", spec, len(s.c.members))
	r.NotStopped = s.c.stop(30 * time.Second)
	// memberlist's Shutdown does not wait for its probe and fallback
	// goroutines, which end on timers of their own: the bubble's clock
	// stops when this function returns, so give them that time now. It
	// costs no wall time once every member has stopped.
	time.Sleep(time.Minute)
	r.summarise()
	r.LoadAtEnd = loadAverage()
	p.printf("%s: done: converged %v in %.1fs; detection (half) p50 %s p99 %s; decision core p50 %s p99 %s; record p50 %s p99 %s; coordinator's crash: record p50 %s max %s; wrong actions %d",
		spec, r.Converged, r.ConvergenceS, fmtS(r.Detection[keyHalf].P50), fmtS(r.Detection[keyHalf].P99),
		fmtS(r.Detection[keyDecision].P50), fmtS(r.Detection[keyDecision].P99),
		fmtS(r.Detection[keyRecord].P50), fmtS(r.Detection[keyRecord].P99),
		fmtS(r.Detection[keyHolderRecord].P50), fmtS(r.Detection[keyHolderRecord].Max), r.WrongCount)
	return r
}

// guard keeps the peak resident memory of the process and stops the run
// when it passes the limit, or when stop is set from outside the bubble.
// It polls on the simulated clock, and reads /proc at most once a second
// of wall time: a small group runs hundreds of simulated seconds in one.
func guard(ctx context.Context, cancel context.CancelCauseFunc, stop *stopSignal, limitMiB int, peak *atomic.Uint64) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	limit := uint64(limitMiB) << 20
	var lastRead time.Time
	for {
		if why := stop.get(); why != nil {
			cancel(why)
			return
		}
		if now := wallNow(); now.Sub(lastRead) >= time.Second {
			lastRead = now
			rss, _ := rssBytes()
			if rss > peak.Load() {
				peak.Store(rss)
			}
			if rss > limit {
				cancel(fmt.Errorf("resident memory %d MiB passed -max-rss-mib %d", rss>>20, limitMiB))
				return
			}
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
// and reports progress every 10 s of wall time.
func (s *sim) waitUntil(ctx context.Context, deadline time.Time, what string, cond func() bool, status func() string) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := wallNow()
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (%s)", what, status())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("while waiting for %s (%s): %w", what, status(), context.Cause(ctx))
		case <-t.C:
		}
		if wallNow().Sub(last) >= 10*time.Second {
			last = wallNow()
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
// previous one is seen (-pace: by all but a few of the members started, or
// by the first member). It then waits
// until every member sees every other alive (or suspect). The members that
// run a coordinator start it with them.
func (s *sim) converge(ctx context.Context) error {
	m := beginPhase(phaseConverge)
	defer s.endPhase(m)
	n := s.spec.n
	rec := s.c.rec
	start := time.Now()
	deadline := start.Add(s.o.convergeTimeout)
	for i := 0; i < n; {
		end := min(i+s.o.batch, n)
		for ; i < end; i++ {
			mem, err := s.c.start(i)
			if err != nil {
				return fmt.Errorf("start %s: %w", memberName(i), err)
			}
			if err := s.coords.start(mem); err != nil {
				return err
			}
		}
		what := "the first member to see the batch"
		cond := func() bool { return rec.knownBy(0) >= end }
		status := func() string { return fmt.Sprintf("the first member sees %d of %d started", rec.knownBy(0), end) }
		if s.o.pace == "all" {
			// Every member started so far must have taken the batch in
			// before the next starts, as a DaemonSet's rollout is paced:
			// a group of hundreds that is given members faster than it
			// spreads them piles up alive messages in every member's
			// queues. A member or two may miss one of the others until a
			// push-pull repairs it, tens of seconds later: that is the
			// protocol's to measure in the convergence time, not a reason
			// to hold the start of the rest.
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
		if end%(5*s.o.batch) == 0 || end == n {
			rss, _ := rssBytes()
			s.p.printf("%s: %d members started (%d MiB resident)", s.spec, end, rss>>20)
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

// settleWindow is the window over which settle reads the traffic.
const settleWindow = 5 * time.Second

// settledPacketBytes is the mean packet size under which a window counts
// as idle. An idle member's packets are bare probes and acks of some 50
// bytes; while the formation's alive messages still wait in the broadcast
// queues, memberlist piggybacks them on every probe and ack and sends
// gossip packets full of them, hundreds of bytes each.
const settledPacketBytes = 150

// settle lets the group's formation die down before the quiet period is
// measured. Every member's start is an alive message that each member
// passes on RetransmitMult × log10(N+1) times, piggybacked on its probes
// and gossip: at a thousand members that traffic goes on for tens of
// seconds after every member sees every other, and would be counted as
// the idle cost. It waits, up to -settle, until a window's packets are
// bare probes and acks again (settledPacketBytes). The volume of traffic
// is no guide: while the queues drain every packet is full, so the bytes
// a window stay flat until the queues are empty.
func (s *sim) settle(ctx context.Context) error {
	if s.o.settle == 0 {
		return nil
	}
	start := time.Now()
	live := s.c.live()
	for time.Since(start) < s.o.settle {
		bytes0, packets0 := packetBytes(live), packets(live)
		if err := sleep(ctx, settleWindow); err != nil {
			return err
		}
		bytes, n := packetBytes(live)-bytes0, packets(live)-packets0
		if n > 0 && bytes/n < settledPacketBytes {
			s.r.Settled = true
			break
		}
	}
	s.r.SettleS = time.Since(start).Seconds()
	if !s.r.Settled {
		s.p.printf("%s: formation traffic did not settle within -settle %s: the idle figures include some of it", s.spec, s.o.settle)
		return nil
	}
	s.p.printf("%s: formation traffic settled after %.0fs", s.spec, s.r.SettleS)
	return nil
}

// quiet watches the group while nothing fails.
func (s *sim) quiet(ctx context.Context) error {
	s.c.rec.setPhase(phaseQuiet)
	s.coord.setPhase(phaseQuiet)
	s.api.setPhase(phaseQuiet)
	if s.o.quiet == 0 {
		return nil
	}
	s.p.printf("%s: quiet period of %s", s.spec, s.o.quiet)
	m := beginPhase(phaseQuiet)
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

// crashes crashes members one after the other, then (-coordinator-crashes)
// the member that holds the coordinator Lease, each time the one that
// holds it then, and waits, for each, until every survivor sees it dead
// and a coordinator has recorded its failover (and the decision core
// alone would have started it), or the crash timeout passes.
func (s *sim) crashes(ctx context.Context) error {
	s.c.rec.setPhase(phaseCrash)
	s.coord.setPhase(phaseCrash)
	s.api.setPhase(phaseCrash)
	limit := crashTimeout(s.o, s.timing, s.spec.n)
	s.r.CrashTimeoutS = limit.Seconds()
	err := s.measured(phaseCrash, s.o.crashes, func() error {
		for k := 0; k < s.o.crashes; k++ {
			var candidates []*member
			for _, mem := range s.c.live() {
				// The coordinators' members are crashed only as the Lease
				// holder, below; a stalled member is left to its stall, so
				// that a crash is only a crash.
				if !s.c.spared(mem) && !s.c.isStalled(mem) {
					candidates = append(candidates, mem)
				}
			}
			if len(candidates) == 0 {
				return errors.New("no member left to crash")
			}
			victim := candidates[rand.N(len(candidates))]
			if err := s.crashOne(ctx, victim, false, limit, fmt.Sprintf("crash %d/%d", k+1, s.o.crashes)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Apart: the votes about a dead holder go to every member, not to the
	// holder alone, and cost more than those about other members.
	return s.measured(phaseHolderCrash, s.o.coordinatorCrashes, func() error {
		for k := 0; k < s.o.coordinatorCrashes; k++ {
			var victim *member
			err := s.waitUntil(ctx, time.Now().Add(limit), "a member to hold the coordinator Lease", func() bool {
				victim = s.coords.holder()
				return victim != nil && !s.c.rec.isCrashed(victim.idx)
			}, func() string { return fmt.Sprintf("the Lease names %q", s.api.leaseHolder()) })
			if err != nil {
				return err
			}
			what := fmt.Sprintf("crash of the Lease holder %d/%d", k+1, s.o.coordinatorCrashes)
			if err := s.crashOne(ctx, victim, true, limit, what); err != nil {
				return err
			}
		}
		return nil
	})
}

// measured runs the count crashes of run as phase: its cost, and the
// traffic of the members that survive it.
func (s *sim) measured(phase string, count int, run func() error) error {
	if count == 0 {
		return nil
	}
	m := beginPhase(phase)
	live := s.c.live()
	before, t0 := countAll(live), time.Now()
	err := run()
	survivors := s.c.live()
	after := countAll(survivors)
	s.endPhase(m)
	s.r.Traffic = append(s.r.Traffic, trafficBetween(phase, survivors, before, after, time.Since(t0)))
	return err
}

// crashOne crashes victim, the Lease holder if holder is set, and waits
// until every survivor sees it dead, a coordinator has recorded its
// failover and cordoned its Node (the record comes first), and the
// decision core alone would have started it, or limit passes; and, for
// the holder, until another member holds the Lease.
func (s *sim) crashOne(ctx context.Context, victim *member, holder bool, limit time.Duration, what string) error {
	if holder {
		s.coords.crash(victim) // its API requests stop with it
	}
	at := s.c.crash(victim)
	survivors := len(s.c.live())
	cs := crashSample{Victim: victim.name, AtS: at.Sub(s.c.rec.start).Seconds(), Survivors: survivors, LeaseHolder: holder}
	deadline := at.Add(limit)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var takeover time.Time
	var err error
wait:
	for {
		if holder && takeover.IsZero() {
			if h := s.api.leaseHolder(); h != "" && h != victim.name {
				takeover = time.Now()
			}
		}
		_, decided := s.coord.startedAt(victim.name)
		_, cordoned := s.api.cordoned(victim.name)
		if s.c.rec.deadSeen(victim.idx) >= survivors && decided && cordoned && (!holder || !takeover.IsZero()) {
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
	if w, ok := s.api.recorded(victim.name); ok {
		cs.RecordS, cs.RecordBy = ptr(w.at.Sub(at).Seconds()), w.by
	}
	if w, ok := s.api.cordoned(victim.name); ok {
		cs.CordonS = ptr(w.at.Sub(at).Seconds())
	}
	if !takeover.IsZero() {
		cs.TakeoverS = ptr(takeover.Sub(at).Seconds())
	}
	s.r.Crashes = append(s.r.Crashes, cs)
	s.p.printf("%s: %s %s: first %s, half %s, all %s (%d/%d), decision core %s, record %s (by %s)%s%s", s.spec, what, victim.name,
		fmtS(cs.FirstS), fmtS(cs.HalfS), fmtS(cs.AllS), cs.SeenDead, survivors, fmtS(cs.DecisionS), fmtS(cs.RecordS), cs.RecordBy,
		takeoverNote(holder, cs.TakeoverS), timedOut(cs.TimedOut, limit))
	if err != nil {
		return err
	}
	return sleep(ctx, 2*s.timing.ProbeInterval)
}

func takeoverNote(holder bool, s *float64) string {
	if !holder {
		return ""
	}
	return ", Lease taken over " + fmtS(s)
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

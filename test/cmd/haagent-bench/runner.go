package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// runner crashes the nodes of one cluster and records the crashes in s.
type runner struct {
	p        *scenario.Printer
	c        *scenario.Cluster
	s        *Setup
	tag      string // printed before every line, for set-ups run side by side
	agents   bool
	perCrash time.Duration // how long a crash's required phases may take
	// statefulEvery: with agents, every statefulEvery-th crash (the first
	// included) waits for the StatefulSet pod to run elsewhere, which
	// haagent does only --fence-bound after the death is confirmed; the
	// others bring the node back once every other phase was seen. 0 or 1:
	// every crash waits.
	statefulEvery int

	mu   sync.Mutex
	next int             // index into c.Nodes of the next victim; node-1 is never crashed
	down map[string]bool // nodes crashed and not back yet
}

func newRunner(p *scenario.Printer, c *scenario.Cluster, s *Setup, agents bool, perCrash time.Duration) *runner {
	return &runner{p: p, c: c, s: s, tag: "[" + s.Name + "] ", agents: agents, perCrash: perCrash, next: 1, down: map[string]bool{}}
}

// required are the phases a crash must show to count as measured.
func required(agents bool) []scenario.Phase {
	ps := []scenario.Phase{scenario.NodeNotReady, scenario.Tainted, scenario.PodsNotReady, scenario.EndpointsRemoved,
		scenario.Evicted, scenario.ReplacementReady, scenario.Recovered}
	if agents {
		// haagent force-deletes a dead node's StatefulSet pods --fence-bound
		// after it confirmed the death; stock Kubernetes never does.
		ps = append([]scenario.Phase{scenario.DeadEverywhere, scenario.Cordoned}, ps...)
		ps = append(ps, scenario.StatefulMoved)
	}
	return ps
}

// MaxDown is how many of n nodes may be down at once without the node
// lifecycle controller calling the zone unhealthy: fewer than 55 %
// (--unhealthy-zone-threshold) of its nodes NotReady. Past it, in a zone of
// at most 50 nodes (--large-cluster-size-threshold), it stops evicting.
func MaxDown(n int) int {
	return max(int(math.Ceil(0.55*float64(n)))-1, 1)
}

// sequential crashes one node at a time: each returns, is handed back and
// the workload is spread one pod per node again before the next crash,
// which comes at least minGap after the previous one. Only every
// r.statefulEvery-th crash waits for the StatefulSet phase (the fence
// bound, 17 s or more): it is the slowest phase by far, set by a flag, and
// the same on every crash, so a few samples show it, while waiting for it
// on every crash would double the benchmark's time.
func (r *runner) sequential(ctx context.Context, crashes int, minGap time.Duration) error {
	for i := range crashes {
		victim, err := r.pickVictim(ctx)
		if err != nil {
			return err
		}
		if i > 0 {
			if wait := time.Until(r.s.Crashes[i-1].CrashedAt.Add(minGap)); wait > 0 {
				if err := scenario.Sleep(ctx, wait); err != nil {
					return err
				}
			}
		}
		run := &Run{Victim: victim}
		if r.agents && r.statefulEvery > 1 && i%r.statefulEvery != 0 {
			run.Unwatched = []scenario.Phase{scenario.StatefulMoved}
		}
		r.s.Crashes = append(r.s.Crashes, run)
		cr, err := r.crash(ctx, run, i+1, crashes)
		if err != nil {
			return err
		}
		if err := r.back(ctx, run, cr); err != nil {
			return err
		}
		step := r.p.Begin("%s  waiting until every node is Ready and untainted, the workload one pod per node again", r.tag)
		if err := r.whole(ctx); err != nil {
			return err
		}
		step.Done("%s  cluster whole", r.tag)
	}
	return nil
}

// pipelined starts a crash every gap, holding the next one back while
// maxDown nodes are down; each node returns as soon as its crash's
// required phases were seen.
func (r *runner) pipelined(ctx context.Context, crashes int, gap time.Duration, maxDown int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, maxDown)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range crashes {
		if i > 0 {
			if err := scenario.Sleep(ctx, gap); err != nil {
				break
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		victim, err := r.pickVictim(ctx)
		if err != nil {
			<-slots
			cancel(err)
			errs = append(errs, err)
			break
		}
		run := &Run{Victim: victim}
		r.mu.Lock()
		r.s.Crashes = append(r.s.Crashes, run)
		r.down[victim] = true
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			cr, err := r.crash(ctx, run, i+1, crashes)
			if err == nil {
				err = r.back(ctx, run, cr)
			}
			if err == nil {
				err = scenario.Poll(ctx, 250*time.Millisecond, 3*time.Minute, victim+" Ready and untainted", func(ctx context.Context) (bool, error) {
					return r.nodeHealthy(ctx, victim)
				})
			}
			r.mu.Lock()
			delete(r.down, victim)
			r.mu.Unlock()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel(err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	step := r.p.Begin("%s  waiting until every node is Ready and untainted, the workload one pod per node again", r.tag)
	if err := r.whole(ctx); err != nil {
		return err
	}
	step.Done("%s  cluster whole", r.tag)
	return nil
}

// whole waits until every node is healthy and the workload is one pod per
// node again.
func (r *runner) whole(ctx context.Context) error {
	if err := r.c.WaitHealthy(ctx, 3*time.Minute); err != nil {
		return err
	}
	if err := r.c.WaitWorkload(ctx, 2*time.Minute); err != nil {
		return err
	}
	return r.c.Rebalance(ctx, 2*time.Minute)
}

func (r *runner) nodeHealthy(ctx context.Context, name string) (bool, error) {
	node, err := r.c.Client().CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if scenario.NodeReady(node) != corev1.ConditionTrue || len(node.Spec.Taints) > 0 || node.Spec.Unschedulable {
		return false, fmt.Errorf("%s: Ready=%s, unschedulable=%v, taints %v", name, scenario.NodeReady(node), node.Spec.Unschedulable, node.Spec.Taints)
	}
	return true, nil
}

// pickVictim returns the next node, in turn from node-2 on, that is up and
// runs a pod of the Deployment and, with the stateful workload, one of the
// StatefulSet.
func (r *runner) pickVictim(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range len(r.c.Nodes) {
		n := r.c.Nodes[r.next]
		r.next++
		if r.next >= len(r.c.Nodes) {
			r.next = 1
		}
		if r.down[n.Name()] {
			continue
		}
		pods, err := r.c.PodsOn(ctx, n.Name())
		if err != nil {
			return "", err
		}
		sts, err := r.c.StatefulPodsOn(ctx, n.Name())
		if err != nil {
			return "", err
		}
		if len(pods) > 0 && len(sts) > 0 {
			return n.Name(), nil
		}
	}
	return "", errors.New("no node up but node-1 runs a pod of the Deployment and one of the StatefulSet")
}

// crash crashes run.Victim and waits until every required phase is seen.
// The caller brings the node back (back) and stops the returned Crash.
func (r *runner) crash(ctx context.Context, run *Run, i, n int) (*scenario.Crash, error) {
	if r.agents {
		holder, err := r.c.Coordinator(ctx)
		if err != nil {
			return nil, err
		}
		run.Coordinator = holder == run.Victim
	}
	role := ""
	if run.Coordinator {
		role = ", the coordinator"
	}
	cr, err := r.c.Crash(ctx, run.Victim)
	if err != nil {
		return nil, err
	}
	run.CrashedAt = cr.At
	for _, p := range cr.Pods {
		run.Pods = append(run.Pods, p.Name)
	}
	for _, p := range cr.StatefulPods {
		run.StatefulPods = append(run.StatefulPods, p.Name)
	}
	r.p.Printf("%scrash %d/%d: %s (%s, StatefulSet pod(s) %v%s)", r.tag, i, n, run.Victim, scenario.PodNames(cr.Pods), run.StatefulPods, role)
	var need []scenario.Phase
	for _, ph := range required(r.agents) {
		if !slices.Contains(run.Unwatched, ph) {
			need = append(need, ph)
		}
	}
	err = r.waitPhases(ctx, cr, run.Victim, need)
	run.WatchedSeconds = time.Since(cr.At).Seconds()
	m := cr.Measure()
	run.Seconds = map[scenario.Phase]float64{}
	for ph, d := range m.Times {
		run.Seconds[ph] = d.Seconds()
	}
	if err != nil {
		cr.Stop()
		return nil, fmt.Errorf("crash of %s: %w\n%s", run.Victim, err, cr.Timeline.Table())
	}
	return cr, nil
}

// back brings a crashed node back and, with agents, waits until haagent
// handed it back (record Completed). It stops cr.
func (r *runner) back(ctx context.Context, run *Run, cr *scenario.Crash) error {
	defer cr.Stop()
	returned, err := cr.Return(ctx)
	if err != nil {
		return err
	}
	r.p.Printf("%s  %s returned (took %s)", r.tag, run.Victim, scenario.Round(time.Since(returned)))
	if !r.agents {
		return nil
	}
	var rec record.NodeFailover
	err = scenario.Poll(ctx, 100*time.Millisecond, 2*time.Minute, run.Victim+"'s failover record Completed", func(ctx context.Context) (bool, error) {
		var ok bool
		var err error
		rec, ok, err = r.c.LatestRecord(ctx, run.Victim)
		return ok && rec.Status.Phase == record.PhaseCompleted, err
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, cr.Timeline.Table())
	}
	run.HandBackSeconds = time.Since(returned).Seconds()
	run.RecordTimeToDetect, run.RecordTimeToRepair = rec.Status.TimeToDetect, rec.Status.TimeToRepair
	r.p.Printf("%s  %s handed back (record Completed) %.1fs after its return; the record says: detect %s, repair %s from last heard",
		r.tag, run.Victim, run.HandBackSeconds, rec.Status.TimeToDetect, rec.Status.TimeToRepair)
	return nil
}

// waitPhases prints each phase as it is first seen, until all of need are,
// or r.perCrash passes. Every 30 s without news it says what it waits for.
func (r *runner) waitPhases(ctx context.Context, cr *scenario.Crash, victim string, need []scenario.Phase) error {
	deadline := cr.At.Add(r.perCrash)
	shown := map[scenario.Phase]bool{}
	lastNews := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		m := cr.Measure()
		for _, ph := range scenario.Phases() {
			if d, ok := m.Get(ph); ok && !shown[ph] {
				shown[ph] = true
				lastNews = time.Now()
				detail := ""
				if m.Detail[ph] != "" {
					detail = " (" + m.Detail[ph] + ")"
				}
				r.p.Raw("    %s%s %+9.3fs  %s%s\n", r.tag, victim, d.Seconds(), ph.Title(), detail)
			}
		}
		var missing []scenario.Phase
		for _, ph := range need {
			if _, ok := m.Get(ph); !ok {
				missing = append(missing, ph)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not seen within %s of the crash: %v", r.perCrash, missing)
		}
		if time.Since(lastNews) >= 30*time.Second {
			r.p.Raw("    %s%s %+9.3fs  … waiting for: %v\n", r.tag, victim, time.Since(cr.At).Seconds(), missing)
			lastNews = time.Now()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

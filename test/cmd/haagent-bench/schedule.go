package main

// The schedule of a benchmark run: which set-ups run at each size, and
// which run beside the haagent clusters' chaos phases, in side windows.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// haagentSetup adds the haagent set-up to sz, when there are crashes.
func (b *bench) haagentSetup(sz *Size) *Setup {
	o := b.opts
	if o.crashes == 0 {
		return nil
	}
	schedule := fmt.Sprintf("one crash at a time, the node handed back and the workload one pod per node again before the next; at least %s apart (--failover-interval)", o.failoverInterval)
	if o.statefulEvery > 1 {
		schedule += fmt.Sprintf("; every %s crash, the first included, waits for the StatefulSet pod to run elsewhere (--fence-bound after the confirmation), the others bring the node back once every other phase was seen", ordinal(o.statefulEvery))
	}
	desc := "stock control-plane timings, a haagent agent per node (default gossip profile)"
	if o.ground == scenario.Hollow {
		desc += "; hollow nodes (a kubemark kubelet and the agent in a network namespace per node)"
	}
	s := &Setup{
		Name:        setupHaagent,
		Description: desc,
		AgentArgs:   b.agentArgs(),
		Schedule:    schedule,
	}
	sz.Setups = append(sz.Setups, s)
	return s
}

// ordinal spells 2, 3, 4... as "2nd", "3rd", "4th".
func ordinal(k int) string {
	switch {
	case k%100 >= 11 && k%100 <= 13:
		return fmt.Sprintf("%dth", k)
	case k%10 == 1:
		return fmt.Sprintf("%dst", k)
	case k%10 == 2:
		return fmt.Sprintf("%dnd", k)
	case k%10 == 3:
		return fmt.Sprintf("%drd", k)
	}
	return fmt.Sprintf("%dth", k)
}

// stockJobs adds the stock set-ups to sz and returns their runs.
func (b *bench) stockJobs(sz *Size) (tuned, dflt []func(context.Context) error) {
	o := b.opts
	n := sz.Nodes
	if o.tuned {
		s := &Setup{Name: setupTuned, Description: scenario.Tuned.String(), Schedule: "one crash at a time, the node back and the workload one pod per node again before the next"}
		sz.Setups = append(sz.Setups, s)
		tuned = append(tuned, func(ctx context.Context) error {
			b.p.Printf("=== %d nodes, stock tuned: %d crashes ===", n, o.tunedCrashes)
			err := b.cluster(ctx, s, scenario.Config{BinDir: o.binDir, Nodes: n, Ground: o.ground, Timings: scenario.Tuned}, func(c *scenario.Cluster) error {
				return newRunner(b.p, c, s, false, 3*time.Minute).sequential(ctx, o.tunedCrashes, 0)
			})
			if err != nil {
				return fmt.Errorf("%d nodes, stock tuned: %w", n, err)
			}
			return nil
		})
	}
	if o.stock {
		maxDown := min(MaxDown(n), o.stockCrashes)
		s := &Setup{Name: setupDefault, Description: scenario.Stock.String(),
			Schedule: fmt.Sprintf("overlapping: a crash every %s, at most %d of %d nodes down at once (below the 55 %% unhealthy-zone threshold); each node returns once its crash's phases were seen; \"workload recovered\" waits for the pods of every crash under way", o.stockGap, maxDown, n)}
		sz.Setups = append(sz.Setups, s)
		dflt = append(dflt, func(ctx context.Context) error {
			b.p.Printf("=== %d nodes, stock default: %d overlapping crashes, %s apart (eviction comes ~300 s after the taint: about 6 minutes each) ===", n, o.stockCrashes, o.stockGap)
			err := b.cluster(ctx, s, scenario.Config{BinDir: o.binDir, Nodes: n, Ground: o.ground, Timings: scenario.Stock}, func(c *scenario.Cluster) error {
				return newRunner(b.p, c, s, false, 9*time.Minute).pipelined(ctx, o.stockCrashes, o.stockGap, maxDown)
			})
			if err != nil {
				return fmt.Errorf("%d nodes, stock default: %w", n, err)
			}
			return nil
		})
	}
	return tuned, dflt
}

// besideJob runs the -beside command (bash -c) to its end; its output goes
// to this program's stderr unless the command redirects it.
func (b *bench) besideJob(command string) func(context.Context) error {
	return func(ctx context.Context) error {
		b.p.Printf("beside the side window: %s", command)
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", "-c", command)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 30 * time.Second
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("-beside command: %w", err)
		}
		b.p.Printf("beside command done after %s", scenario.Round(time.Since(start)))
		return nil
	}
}

// size runs the haagent set-up of sz (nil: none) and, in its side window,
// the side jobs: the stock clusters of this and other sizes and the
// -beside command. The side window opens when the haagent cluster's crashes
// are over (beside its chaos phases, with -stock-concurrent) and closes
// when every side job has ended: nothing of the benchmark's runs beside a
// cost window or the haagent crashes, whose figures are taken on a machine
// busy with nothing else of the benchmark's.
func (b *bench) size(ctx context.Context, sz *Size, haagent *Setup, jobs []func(context.Context) error, bin string, rng *rand.Rand) error {
	o := b.opts
	n := sz.Nodes
	stockCtx, cancelStock := context.WithCancel(ctx)
	defer cancelStock()
	var stockDone chan error
	startStock := func() {
		stockDone = make(chan error, 1)
		go func() { stockDone <- b.stock(stockCtx, jobs) }()
	}
	var err error
	if haagent != nil {
		b.p.Raw("\n=== %d nodes, haagent: %d crashes, chaos %s per kind, cost window %s ===\n\n", n, o.crashes, o.chaos, o.cost)
		err = b.cluster(ctx, haagent, scenario.Config{
			BinDir: o.binDir, Nodes: n, Ground: o.ground, Timings: scenario.Stock,
			Haagent: bin, AgentArgs: haagent.AgentArgs, Deploy: filepath.Join(b.root, "deploy"),
			AuditLog: o.apiCost > 0,
		}, func(c *scenario.Cluster) error {
			var err error
			if sz.Gossip, err = gossipTimings(ctx, c); err != nil {
				return err
			}
			b.p.Printf("gossip: %s", sz.Gossip)
			if o.cost > 0 {
				if err := b.cost(ctx, c, sz); err != nil {
					return fmt.Errorf("cost: %w", err)
				}
			}
			if o.apiCost > 0 {
				if _, err := b.apiCost(ctx, c, n); err != nil {
					return fmt.Errorf("api cost: %w", err)
				}
			}
			r := newRunner(b.p, c, haagent, true, 2*time.Minute)
			r.statefulEvery = o.statefulEvery
			if err := r.sequential(ctx, o.crashes, o.failoverInterval); err != nil {
				return err
			}
			if o.chaos == 0 {
				return nil
			}
			if o.stockConcurrent && len(jobs) > 0 {
				b.p.Printf("side window: %d job(s) start now, beside the chaos phases", len(jobs))
				startStock()
			}
			return b.chaos(ctx, c, sz, r, rng)
		})
		if err != nil {
			err = fmt.Errorf("haagent: %w", err)
			cancelStock()
		}
	}
	if stockDone == nil && err == nil && len(jobs) > 0 {
		startStock()
	}
	if stockDone != nil {
		err = errors.Join(err, <-stockDone)
	}
	return err
}

// stock runs the stock clusters, side by side with -stock-concurrent.
func (b *bench) stock(ctx context.Context, jobs []func(context.Context) error) error {
	if !b.opts.stockConcurrent {
		for _, job := range jobs {
			if err := job(ctx); err != nil {
				return err
			}
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, job := range jobs {
		wg.Go(func() { errs[i] = job(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

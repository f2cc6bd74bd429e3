package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/haagent/haagent/test/cluster"
	"github.com/haagent/haagent/test/cmd/internal/scenario"
)

// alertTimeDivisor divides the `for:` durations of the shipped alert rules
// in the demo, so that an alert that waits a minute in production fires
// within its few minutes. The expressions are the shipped ones.
const alertTimeDivisor = 10

// alertPrinter prints each change of the alerts Prometheus evaluates into
// the timeline, as seconds after the crash.
type alertPrinter struct {
	p    *scenario.Printer
	w    *cluster.AlertWatcher
	zero atomic.Pointer[time.Time]
	seen atomic.Int64
}

func (d *demo) watchAlerts(prom *cluster.Prometheus) *alertPrinter {
	a := &alertPrinter{p: d.p}
	now := time.Now()
	a.zero.Store(&now)
	a.w = prom.WatchAlerts(250*time.Millisecond, func(c cluster.AlertChange) {
		a.seen.Add(1)
		what := "alert " + c.To
		if c.To == "" {
			what = "alert resolved"
		}
		a.p.Raw("  %+9.3fs  %-18s %s  (Prometheus)\n", c.At.Sub(*a.zero.Load()).Seconds(), what, c.Alert.Key())
	})
	return a
}

// from sets the time the printed offsets count from.
func (a *alertPrinter) from(t time.Time) {
	if a != nil {
		a.zero.Store(&t)
	}
}

func (a *alertPrinter) stop() {
	if a != nil {
		a.w.Stop()
	}
}

// waitFiring waits until the alert fires with label = value.
func (a *alertPrinter) waitFiring(ctx context.Context, name, label, value string, timeout time.Duration) error {
	return scenario.Poll(ctx, 250*time.Millisecond, timeout, name+" firing", func(context.Context) (bool, error) {
		for _, al := range a.w.Current() {
			if al.Name() == name && al.Labels[label] == value && al.State == "firing" {
				return true, nil
			}
		}
		return false, a.w.Err()
	})
}

// waitResolved waits until no alert is pending or firing, and says how many
// changes the demo saw.
func (a *alertPrinter) waitResolved(ctx context.Context, timeout time.Duration) error {
	err := scenario.Poll(ctx, 250*time.Millisecond, timeout, "every alert resolved", func(context.Context) (bool, error) {
		return len(a.w.Current()) == 0, a.w.Err()
	})
	if err != nil {
		return fmt.Errorf("alerts: %w (still active: %v)", err, a.w.Current())
	}
	a.p.Printf("every alert resolved (%d alert changes seen; the rules' `for:` divided by %d for the demo)", a.seen.Load(), alertTimeDivisor)
	return nil
}

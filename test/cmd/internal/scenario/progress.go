package scenario

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Printer writes progress lines stamped with the time since it was made.
// It is safe for concurrent use.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
}

// NewPrinter returns a Printer writing to w, with its clock starting now.
func NewPrinter(w io.Writer) *Printer {
	return &Printer{w: w, start: time.Now()}
}

// Printf writes one stamped line.
func (p *Printer) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

// Raw writes text as it is, unstamped.
func (p *Printer) Raw(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// Step is a piece of work whose duration is reported when it is done.
type Step struct {
	p     *Printer
	start time.Time
}

// Begin prints what is about to be done and returns the Step.
func (p *Printer) Begin(format string, args ...any) Step {
	p.Printf(format+" ...", args...)
	return Step{p: p, start: time.Now()}
}

// Done prints the outcome and how long the step took.
func (s Step) Done(format string, args ...any) {
	s.p.Printf("%s (took %s)", fmt.Sprintf(format, args...), Round(time.Since(s.start)))
}

// Round shortens a duration for printing: 10 ms steps under a minute,
// 100 ms steps above.
func Round(d time.Duration) time.Duration {
	if d < time.Minute && d > -time.Minute {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// Poll calls cond every interval until it holds, ctx ends or timeout
// passes. On timeout the error names what was awaited and cond's last error.
func Poll(ctx context.Context, interval, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		if err != nil {
			last = err
		}
		return ok && err == nil, nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	if last != nil {
		return fmt.Errorf("%s: not within %s (last: %v)", what, timeout, last)
	}
	return fmt.Errorf("%s: not within %s", what, timeout)
}

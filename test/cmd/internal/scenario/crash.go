package scenario

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/haagent/haagent/test/cluster"
)

// Crash is one node's crash and what was seen of it.
type Crash struct {
	// Victim is the crashed node's name.
	Victim string
	// At is the instant of the crash.
	At time.Time
	// Pods are the workload's pods on the victim at the crash.
	Pods []corev1.Pod
	// StatefulPods are the StatefulSet's pods on the victim at the crash
	// (none without StartStatefulWorkload).
	StatefulPods []corev1.Pod
	// Survivors are the other nodes.
	Survivors []string
	// Timeline is the API's view of the crash.
	Timeline *cluster.Timeline

	node   *cluster.Node
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	views   []View
	printed map[string]bool
}

// View is a change of the victim's state as one survivor's agent sees it.
type View struct {
	// Observer is the node whose agent changed its mind.
	Observer string
	// State is the victim's new state: alive, suspect, dead, left.
	State string
	// At is when the observer's agent says the victim entered State.
	At time.Time
}

// Crash powers victim off (see cluster.Node.Crash) with a Timeline
// watching the API and, with agents, every survivor's /members watched for
// the victim's state.
func (c *Cluster) Crash(ctx context.Context, victim string) (*Crash, error) {
	n := c.Node(victim)
	if n == nil {
		return nil, fmt.Errorf("no node %s", victim)
	}
	pods, err := c.PodsOn(ctx, victim)
	if err != nil {
		return nil, err
	}
	stateful, err := c.StatefulPodsOn(ctx, victim)
	if err != nil {
		return nil, err
	}
	tl, err := cluster.StartTimeline(ctx, c.CP.RESTConfig())
	if err != nil {
		return nil, err
	}
	watchCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cr := &Crash{Victim: victim, Pods: pods, StatefulPods: stateful, Timeline: tl, node: n, cancel: cancel, printed: map[string]bool{}}
	var observers []*cluster.Node
	for _, o := range c.Nodes {
		if o.Name() == victim {
			continue
		}
		cr.Survivors = append(cr.Survivors, o.Name())
		if o.Agent() != nil {
			observers = append(observers, o)
		}
	}
	for _, o := range observers {
		cr.wg.Add(1)
		go func() {
			defer cr.wg.Done()
			cr.watch(watchCtx, o)
		}()
	}
	at, err := n.Crash()
	cr.At = at
	tl.Fault(at, victim)
	if err != nil {
		cr.Stop()
		return nil, fmt.Errorf("crash %s: %w", victim, err)
	}
	return cr, nil
}

// watch polls observer's membership table every 100 ms and records each
// change of the victim's state.
func (cr *Crash) watch(ctx context.Context, observer *cluster.Node) {
	last := "alive"
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		reqCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := observer.Agent().Members(reqCtx)
		cancel()
		if err == nil {
			if m, ok := cluster.Member(resp, cr.Victim); ok && m.State.String() != last {
				last = m.State.String()
				at := m.Since
				if at.IsZero() {
					at = time.Now()
				}
				cr.mu.Lock()
				cr.views = append(cr.views, View{Observer: observer.Name(), State: last, At: at})
				cr.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Views returns the survivors' views of the victim so far, in time order.
func (cr *Crash) Views() []View {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	out := slices.Clone(cr.views)
	slices.SortStableFunc(out, func(a, b View) int { return a.At.Compare(b.At) })
	return out
}

// AllSee returns when the last of the survivors' agents first saw the
// victim in state, false if some have not yet.
func (cr *Crash) AllSee(state string) (time.Time, bool) {
	first := map[string]time.Time{}
	for _, v := range cr.Views() {
		if _, ok := first[v.Observer]; v.State == state && !ok && !v.At.Before(cr.At) {
			first[v.Observer] = v.At
		}
	}
	if len(first) < len(cr.Survivors) {
		return time.Time{}, false
	}
	var last time.Time
	for _, t := range first {
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

// Return brings the victim back (see cluster.Node.Return).
func (cr *Crash) Return(ctx context.Context) (time.Time, error) {
	at := time.Now()
	return at, cr.node.Return(ctx)
}

// Stop ends the watches; what was seen stays readable.
func (cr *Crash) Stop() {
	cr.cancel()
	cr.wg.Wait()
	cr.Timeline.Stop()
}

// Line is one line of a live timeline.
type Line struct {
	// Since is relative to the crash.
	Since time.Duration
	Text  string
}

// NewLines returns what was seen since the last call, each thing once, in
// time order: the Timeline's events and the survivors' views. Updates of a
// failover record that do not change its phase are left out.
func (cr *Crash) NewLines() []Line {
	var out []Line
	add := func(key string, since time.Duration, text string) {
		if cr.printed[key] {
			return
		}
		cr.printed[key] = true
		out = append(out, Line{Since: since, Text: text})
	}
	for _, e := range cr.Timeline.Events() {
		if e.Kind == cluster.EventFailoverRecord && strings.HasPrefix(e.Detail, "updated") {
			continue
		}
		key := fmt.Sprintf("e|%s|%s|%s|%s|%d", e.Kind, e.Subject, e.Node, e.Detail, e.At.UnixNano())
		add(key, e.Since, describe(e))
	}
	for _, v := range cr.Views() {
		key := fmt.Sprintf("v|%s|%s|%d", v.Observer, v.State, v.At.UnixNano())
		add(key, v.At.Sub(cr.At), fmt.Sprintf("%-18s %s sees %s %s", "gossip", v.Observer, cr.Victim, v.State))
	}
	slices.SortStableFunc(out, func(a, b Line) int { return cmp.Compare(a.Since, b.Since) })
	return out
}

// describe puts a Timeline event into words.
func describe(e cluster.Event) string {
	kind := string(e.Kind)
	switch e.Kind {
	case cluster.EventLastHeartbeat:
		return fmt.Sprintf("%-18s %s renewed its node Lease for the last time before the crash", kind, e.Subject)
	case cluster.EventHeartbeat:
		return fmt.Sprintf("%-18s %s renews its node Lease again", kind, e.Subject)
	case cluster.EventCordoned, cluster.EventUncordoned:
		return fmt.Sprintf("%-18s %s", kind, e.Subject)
	case cluster.EventTainted, cluster.EventUntainted:
		return fmt.Sprintf("%-18s %s %s", kind, e.Subject, e.Detail)
	case cluster.EventNodeNotReady:
		return fmt.Sprintf("%-18s %s Ready=%s", kind, e.Subject, e.Detail)
	case cluster.EventNodeReady:
		return fmt.Sprintf("%-18s %s Ready=True", kind, e.Subject)
	case cluster.EventNodeCondition:
		return fmt.Sprintf("%-18s %s %s", kind, e.Subject, e.Detail)
	case cluster.EventEndpointRemoved, cluster.EventEndpointReady:
		return fmt.Sprintf("%-18s %s (on %s) in Service %s", kind, e.Subject, e.Node, e.Detail)
	case cluster.EventPodDeleting:
		if e.Detail != "" {
			return fmt.Sprintf("%-18s %s (on %s), %s", kind, e.Subject, e.Node, e.Detail)
		}
		return fmt.Sprintf("%-18s %s (on %s)", kind, e.Subject, e.Node)
	case cluster.EventReplacementReady:
		return fmt.Sprintf("%-18s %s on %s, for %s", kind, e.Subject, e.Node, e.Detail)
	case cluster.EventOwnerRecovered:
		return fmt.Sprintf("%-18s %s, %s", kind, e.Subject, e.Detail)
	case cluster.EventFailoverRecord:
		return fmt.Sprintf("%-18s %s (node %s) %s", kind, e.Subject, e.Node, e.Detail)
	}
	s := fmt.Sprintf("%-18s %s", kind, e.Subject)
	if e.Node != "" && e.Node != e.Subject {
		s += " (on " + e.Node + ")"
	}
	if e.Detail != "" {
		s += " " + e.Detail
	}
	return s
}

// FormatLine is a live timeline line as the demo prints it.
func FormatLine(l Line) string {
	return fmt.Sprintf("  %+9.3fs  %s", l.Since.Seconds(), l.Text)
}

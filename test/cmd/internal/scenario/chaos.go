package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// ChaosKind is a kind of trouble that must not look like a crash.
type ChaosKind string

// The chaos kinds, each run on its own against a cluster with agents.
const (
	// Loss10 and Loss30 drop 10 % and 30 % of the packets between any two
	// nodes (each node's address loses 1-√(1-p), so that a path through two
	// nodes' rules loses p), the control plane's traffic with the nodes
	// included.
	Loss10 ChaosKind = "loss-10"
	Loss30 ChaosKind = "loss-30"
	// Stall stops one random agent at a time with SIGSTOP for 2 to 5 s,
	// then SIGCONT, with 1 to 3 s between stalls.
	Stall ChaosKind = "stall"
	// Restart restarts one random agent at a time (node-1, the gossip seed,
	// excepted), alternately with SIGTERM and SIGKILL, waits until it is
	// ready, then 2 to 5 s before the next.
	Restart ChaosKind = "restart"
)

// ChaosKinds lists every kind in the order they run.
func ChaosKinds() []ChaosKind { return []ChaosKind{Loss10, Loss30, Stall, Restart} }

// Describe says what the kind does, for a report.
func (k ChaosKind) Describe() string {
	switch k {
	case Loss10:
		return "10 % packet loss between any two nodes, agents and control plane included"
	case Loss30:
		return "30 % packet loss between any two nodes, agents and control plane included"
	case Stall:
		return "SIGSTOP of one random agent at a time for 2–5 s, 1–3 s apart"
	case Restart:
		return "restart of one random agent at a time (SIGTERM and SIGKILL in turn; node-1, the seed, excepted), 2–5 s after it is ready again"
	}
	return string(k)
}

// PerNodeLoss is the drop probability of each node's rule that makes a
// path between two nodes lose p.
func PerNodeLoss(p float64) float64 { return 1 - math.Sqrt(1-p) }

// WrongActions counts what was done to nodes that never failed.
type WrongActions struct {
	// Cordons: spec.unschedulable set.
	Cordons int `json:"cordons"`
	// HaagentTaints: taints with a haagent.io/ key.
	HaagentTaints int `json:"haagentTaints"`
	// KubernetesTaints: the node lifecycle controller's taints
	// (node.kubernetes.io/...): not haagent's doing, reported apart.
	KubernetesTaints int `json:"kubernetesTaints"`
	// Records: NodeFailover records created.
	Records int `json:"records"`
	// Evictions: workload pods that got a deletionTimestamp.
	Evictions int `json:"evictions"`
	// Events lists each of them, relative to the start of the chaos.
	Events []string `json:"events,omitempty"`
}

// Haagent is the number of wrong actions haagent can be blamed for: every
// cordon, haagent taint, record and eviction (the node lifecycle
// controller's taints are left out; they are counted on their own).
func (w WrongActions) Haagent() int { return w.Cordons + w.HaagentTaints + w.Records + w.Evictions }

// ChaosResult is one chaos kind's run.
type ChaosResult struct {
	Kind        ChaosKind `json:"kind"`
	Description string    `json:"description"`
	// Seconds the trouble lasted; SettleSeconds more were watched after it.
	Seconds       float64 `json:"seconds"`
	SettleSeconds float64 `json:"settleSeconds"`
	// Injected counts the stalls or restarts (0 for packet loss).
	Injected int `json:"injected"`
	// PerNodeLoss is each node's drop probability (packet loss only).
	PerNodeLoss float64      `json:"perNodeLoss,omitempty"`
	Wrong       WrongActions `json:"wrong"`
}

// Chaos runs kind against every node for d, watches settle longer, and
// counts the wrong actions seen from its start to the end of the watch.
// The cluster must have agents and no node down. It leaves no fault behind.
func (c *Cluster) Chaos(ctx context.Context, kind ChaosKind, d, settle time.Duration, rng *rand.Rand, p *Printer) (ChaosResult, error) {
	res := ChaosResult{Kind: kind, Description: kind.Describe()}
	if c.cfg.Haagent == "" {
		return res, errors.New("scenario: chaos needs a cluster with agents")
	}
	tl, err := cluster.StartTimeline(ctx, c.CP.RESTConfig())
	if err != nil {
		return res, err
	}
	defer tl.Stop()
	start := time.Now()
	tl.Fault(start)
	switch kind {
	case Loss10, Loss30:
		prob := 0.10
		if kind == Loss30 {
			prob = 0.30
		}
		res.PerNodeLoss = PerNodeLoss(prob)
		err = c.loss(ctx, res.PerNodeLoss, d)
	case Stall:
		res.Injected, err = c.stalls(ctx, d, rng)
	case Restart:
		res.Injected, err = c.restarts(ctx, d, rng, p)
	default:
		err = fmt.Errorf("scenario: unknown chaos kind %q", kind)
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		return res, err
	}
	select {
	case <-ctx.Done():
		return res, context.Cause(ctx)
	case <-time.After(settle):
	}
	res.SettleSeconds = settle.Seconds()
	res.Wrong = CountWrongActions(tl.Events(), nil)
	return res, nil
}

// CountWrongActions counts the actions in events taken on nodes outside
// failed (nil: every node was healthy): cordons, taints, NodeFailover
// records created, workload pods deleted.
func CountWrongActions(events []cluster.Event, failed map[string]bool) WrongActions {
	var w WrongActions
	for _, e := range events {
		if e.Since < 0 || failed[e.Node] {
			continue
		}
		line := fmt.Sprintf("%+.3fs %s %s", e.Since.Seconds(), e.Kind, e.Subject)
		if e.Detail != "" {
			line += " " + e.Detail
		}
		switch {
		case e.Kind == cluster.EventCordoned:
			w.Cordons++
		case e.Kind == cluster.EventTainted && strings.HasPrefix(e.Detail, "haagent.io/"):
			w.HaagentTaints++
		case e.Kind == cluster.EventTainted:
			w.KubernetesTaints++
		case e.Kind == cluster.EventFailoverRecord && strings.HasPrefix(e.Detail, "created"):
			w.Records++
		case e.Kind == cluster.EventPodDeleting && workloadPod(e.Subject):
			w.Evictions++
		default:
			continue
		}
		w.Events = append(w.Events, line)
	}
	return w
}

// workloadPod: a pod (namespace/name) of the sample workload.
func workloadPod(key string) bool {
	return strings.HasPrefix(key, Namespace+"/"+App+"-") || strings.HasPrefix(key, Namespace+"/"+Stateful+"-")
}

func (c *Cluster) loss(ctx context.Context, perNode float64, d time.Duration) (err error) {
	var faults []*cluster.Fault
	defer func() {
		for _, f := range faults {
			err = errors.Join(err, f.Remove())
		}
	}()
	for _, n := range c.Nodes {
		f, err := c.Faults().Loss(n.IP(), perNode)
		if err != nil {
			return err
		}
		faults = append(faults, f)
	}
	return Sleep(ctx, d)
}

func (c *Cluster) stalls(ctx context.Context, d time.Duration, rng *rand.Rand) (int, error) {
	n := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		node := c.Nodes[rng.IntN(len(c.Nodes))]
		if err := node.PauseAgent(); err != nil {
			return n, err
		}
		n++
		err := Sleep(ctx, uniform(rng, 2*time.Second, 5*time.Second))
		if rerr := node.ResumeAgent(); rerr != nil {
			return n, errors.Join(err, rerr)
		}
		if err != nil {
			return n, err
		}
		if err := Sleep(ctx, uniform(rng, time.Second, 3*time.Second)); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *Cluster) restarts(ctx context.Context, d time.Duration, rng *rand.Rand, p *Printer) (int, error) {
	n := 0
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		node := c.Nodes[1+rng.IntN(len(c.Nodes)-1)]
		how := "SIGTERM"
		var err error
		if n%2 == 0 {
			err = node.StopAgent(5 * time.Second)
		} else {
			how = "SIGKILL"
			err = node.CrashAgent()
		}
		if err != nil {
			return n, fmt.Errorf("stop the agent of %s (%s): %w", node.Name(), how, err)
		}
		if err := node.StartAgent(); err != nil {
			return n, fmt.Errorf("restart the agent of %s: %w", node.Name(), err)
		}
		n++
		readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = node.Agent().WaitReady(readyCtx)
		cancel()
		if err != nil {
			return n, err
		}
		p.Printf("    restarted the agent of %s (%s)", node.Name(), how)
		if err := Sleep(ctx, uniform(rng, 2*time.Second, 5*time.Second)); err != nil {
			return n, err
		}
	}
	return n, nil
}

func uniform(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}

// Sleep waits for d, or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}

package scenario

import (
	"slices"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// Phase names a step of a failover whose time after the crash is measured.
type Phase string

// The measured phases, in the order they are reported.
const (
	// DeadEverywhere: every survivor's agent sees the victim dead (gossip).
	DeadEverywhere Phase = "dead-on-all-survivors"
	// NodeNotReady: the Node's Ready condition left True in the API.
	NodeNotReady Phase = "node-not-ready"
	// Cordoned: spec.unschedulable set.
	Cordoned Phase = "cordoned"
	// Tainted: the first taint that says the node is gone: haagent's
	// haagent.io/dead, or the node lifecycle controller's
	// node.kubernetes.io/unreachable or not-ready (any effect).
	Tainted Phase = "tainted-dead"
	// PodsNotReady: every workload pod of the victim has Ready != True.
	PodsNotReady Phase = "pods-not-ready"
	// EndpointsRemoved: none of them is a ready Service endpoint any more.
	EndpointsRemoved Phase = "endpoints-removed"
	// Evicted: every one of them is being deleted (eviction accepted, or
	// deleted by the taint eviction controller).
	Evicted Phase = "eviction"
	// ReplacementReady: as many new pods Running and Ready elsewhere as the
	// victim had, counting only pods that became ready after the victim's
	// own pods were evicted (so that, with several crashes under way, the
	// replacements of another crash's pods do not count).
	ReplacementReady Phase = "replacement-ready"
	// StatefulMoved: every StatefulSet pod of the victim runs again, under
	// its name, Running and Ready on another node. Stock Kubernetes never
	// gets there while the node stays down: the pod stays Terminating until
	// its kubelet confirms or someone force-deletes it.
	StatefulMoved Phase = "statefulset-pod-moved"
	// Recovered: the Deployment has all its replicas Running and Ready
	// again, none on the victim.
	Recovered Phase = "workload-recovered"
)

// Phases lists every phase in report order.
func Phases() []Phase {
	return []Phase{DeadEverywhere, NodeNotReady, Cordoned, Tainted, PodsNotReady, EndpointsRemoved, Evicted, ReplacementReady, StatefulMoved, Recovered}
}

// Title is a phase's name in a table.
func (p Phase) Title() string {
	switch p {
	case DeadEverywhere:
		return "dead on every survivor (gossip)"
	case NodeNotReady:
		return "node Ready≠True in the API"
	case Cordoned:
		return "node cordoned"
	case Tainted:
		return "node tainted dead/unreachable"
	case PodsNotReady:
		return "its pods NotReady"
	case EndpointsRemoved:
		return "its pods out of the Service endpoints"
	case Evicted:
		return "its pods evicted (deleting)"
	case ReplacementReady:
		return "replacement pods ready elsewhere"
	case StatefulMoved:
		return "StatefulSet pod ready elsewhere"
	case Recovered:
		return "workload recovered (all replicas ready)"
	}
	return string(p)
}

// Measured are the phases seen, each as time after the crash, and for some
// a detail (which taint).
type Measured struct {
	Times  map[Phase]time.Duration
	Detail map[Phase]string
}

// Get returns the phase's time and whether it was seen.
func (m Measured) Get(p Phase) (time.Duration, bool) {
	d, ok := m.Times[p]
	return d, ok
}

// Measure reads the phases off what the crash's watches saw so far.
func (cr *Crash) Measure() Measured {
	m := Measured{Times: map[Phase]time.Duration{}, Detail: map[Phase]string{}}
	if at, ok := cr.AllSee("dead"); ok {
		m.Times[DeadEverywhere] = at.Sub(cr.At)
	}
	events := cr.Timeline.Events()
	first := func(match func(cluster.Event) bool) (cluster.Event, bool) {
		for _, e := range events {
			if e.Since >= 0 && match(e) {
				return e, true
			}
		}
		return cluster.Event{}, false
	}
	onVictim := func(kind cluster.EventKind) func(cluster.Event) bool {
		return func(e cluster.Event) bool { return e.Kind == kind && e.Subject == cr.Victim }
	}
	if e, ok := first(onVictim(cluster.EventNodeNotReady)); ok {
		m.Times[NodeNotReady] = e.Since
		m.Detail[NodeNotReady] = "Ready=" + e.Detail
	}
	if e, ok := first(onVictim(cluster.EventCordoned)); ok {
		m.Times[Cordoned] = e.Since
	}
	if e, ok := first(func(e cluster.Event) bool {
		return e.Kind == cluster.EventTainted && e.Subject == cr.Victim && deadTaint(e.Detail)
	}); ok {
		m.Times[Tainted] = e.Since
		m.Detail[Tainted] = strings.TrimPrefix(e.Detail, "node.kubernetes.io/")
	}
	// Pod phases: when the last of the victim's pods got there.
	for phase, kind := range map[Phase]cluster.EventKind{
		PodsNotReady:     cluster.EventPodNotReady,
		EndpointsRemoved: cluster.EventEndpointRemoved,
		Evicted:          cluster.EventPodDeleting,
	} {
		if len(cr.Pods) == 0 {
			break
		}
		var last time.Duration
		all := true
		for _, p := range cr.Pods {
			key := p.Namespace + "/" + p.Name
			e, ok := first(func(e cluster.Event) bool { return e.Kind == kind && e.Subject == key })
			if !ok {
				all = false
				break
			}
			last = max(last, e.Since)
		}
		if all {
			m.Times[phase] = last
		}
	}
	if evicted, ok := m.Times[Evicted]; ok {
		var replacements []time.Duration
		for _, e := range events {
			if e.Kind == cluster.EventReplacementReady && e.Detail == Owner && e.Since >= evicted {
				replacements = append(replacements, e.Since)
			}
		}
		slices.Sort(replacements)
		if n := len(cr.Pods); n > 0 && len(replacements) >= n {
			m.Times[ReplacementReady] = replacements[n-1]
		}
	}
	if len(cr.StatefulPods) > 0 {
		var last time.Duration
		all := true
		for _, p := range cr.StatefulPods {
			key := p.Namespace + "/" + p.Name
			e, ok := first(func(e cluster.Event) bool {
				return e.Kind == cluster.EventReplacementReady && e.Detail == StatefulOwner && e.Subject == key && e.Node != cr.Victim
			})
			if !ok {
				all = false
				break
			}
			last = max(last, e.Since)
		}
		if all {
			m.Times[StatefulMoved] = last
		}
	}
	if e, ok := first(func(e cluster.Event) bool { return e.Kind == cluster.EventOwnerRecovered && e.Subject == Owner }); ok {
		m.Times[Recovered] = e.Since
	}
	return m
}

// deadTaint reports whether a taint (key:effect) says the node is gone.
func deadTaint(t string) bool {
	key, _, _ := strings.Cut(t, ":")
	switch key {
	case "haagent.io/dead", "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready":
		return true
	}
	return false
}

// Applies reports whether a phase exists in a set-up: with agents every
// phase does; without, there is no gossip and nothing cordons.
func (p Phase) Applies(agents bool) bool {
	return agents || (p != DeadEverywhere && p != Cordoned)
}

package cluster

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// ContainerRun is one pod's containers running on one node: from when the
// kubelet started them (just before it reported the pod Running) until it
// stopped them (it saw the pod deleted, or the node was powered off).
type ContainerRun struct {
	// Pod is namespace/name: what a StatefulSet pod keeps on a new node.
	Pod string
	// UID is the pod object's UID.
	UID string
	// Node is the node's name; BootID tells apart the node's boots (a
	// FakeKubelet per boot).
	Node   string
	BootID string
	// Start and Stop are readings of the test process's clock, which every
	// FakeKubelet of a cluster shares, so runs on different nodes compare.
	// Stop is zero while the containers run.
	Start, Stop time.Time
	// StopReason says why they stopped: "deleted" (the kubelet saw the
	// deletion), "crashed" (the kubelet stopped) or "fenced" (the node's
	// fence powered it off). Empty while they run.
	StopReason string
}

// Running reports whether the run has not stopped.
func (r ContainerRun) Running() bool { return r.Stop.IsZero() }

// overlaps reports whether two runs had containers at the same instant.
// A run that has not stopped lasts until now and beyond.
func (r ContainerRun) overlaps(o ContainerRun) bool {
	return (o.Stop.IsZero() || r.Start.Before(o.Stop)) && (r.Stop.IsZero() || o.Start.Before(r.Stop))
}

// Journal records every ContainerRun of the FakeKubelets it is given to
// (FakeKubeletConfig.Journal), so that a test can check afterwards that a
// pod never ran on two nodes at once (rule 5 of docs/design.md). The fake
// kubelets run no containers: a run is what a real kubelet would have
// running. Its start is taken before the pod is reported Running and its
// stop when the kubelet learns it must stop, so runs are if anything too
// long, and an overlap found is never an artefact of the recording.
type Journal struct {
	mu   sync.Mutex
	runs []ContainerRun
}

// NewJournal returns an empty journal.
func NewJournal() *Journal { return &Journal{} }

// start records that the pod's containers run on node, unless they already
// do in this boot.
func (j *Journal) start(pod, uid, node, bootID string, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range j.runs {
		if r.UID == uid && r.BootID == bootID && r.Running() {
			return
		}
	}
	j.runs = append(j.runs, ContainerRun{Pod: pod, UID: uid, Node: node, BootID: bootID, Start: at})
}

// stop ends the running run of the pod in this boot, if any.
func (j *Journal) stop(uid, bootID, reason string, at time.Time) {
	j.stopWhere(func(r ContainerRun) bool { return r.UID == uid && r.BootID == bootID }, reason, at)
}

// stopBoot ends every running run of the boot: the node went down.
func (j *Journal) stopBoot(bootID, reason string, at time.Time) {
	j.stopWhere(func(r ContainerRun) bool { return r.BootID == bootID }, reason, at)
}

func (j *Journal) stopWhere(match func(ContainerRun) bool, reason string, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, r := range j.runs {
		if r.Running() && match(r) {
			// A pod the kubelet was starting while it went down may have
			// been recorded after the instant given: it ran for no time.
			j.runs[i].Stop = later(at, r.Start)
			j.runs[i].StopReason = reason
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// Runs returns every run so far, by start time.
func (j *Journal) Runs() []ContainerRun {
	j.mu.Lock()
	out := slices.Clone(j.runs)
	j.mu.Unlock()
	slices.SortStableFunc(out, func(a, b ContainerRun) int { return a.Start.Compare(b.Start) })
	return out
}

// RunsOf returns the runs of one pod (namespace/name), by start time.
func (j *Journal) RunsOf(pod string) []ContainerRun {
	var out []ContainerRun
	for _, r := range j.Runs() {
		if r.Pod == pod {
			out = append(out, r)
		}
	}
	return out
}

// Overlaps returns, sorted, every pod identity (namespace/name, not UID: a
// StatefulSet pod keeps its name on a new node) that ran on two nodes at
// overlapping times. Two runs on one node are not counted: one kubelet
// stops the old pod before it finalizes its deletion, and the new one
// needs that deletion first.
func (j *Journal) Overlaps() []string {
	byPod := map[string][]ContainerRun{}
	for _, r := range j.Runs() {
		byPod[r.Pod] = append(byPod[r.Pod], r)
	}
	var out []string
	for pod, runs := range byPod {
	pairs:
		for i, a := range runs {
			for _, b := range runs[i+1:] {
				if a.Node != b.Node && a.overlaps(b) {
					out = append(out, pod)
					break pairs
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// Table prints the runs (of the given pods, or all if none is given), with
// times relative to zero.
func (j *Journal) Table(zero time.Time, pods ...string) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tNODE\tUID\tSTART\tSTOP\tREASON")
	for _, r := range j.Runs() {
		if len(pods) > 0 && !slices.Contains(pods, r.Pod) {
			continue
		}
		stop := "running"
		if !r.Running() {
			stop = fmt.Sprintf("%+.3fs", r.Stop.Sub(zero).Seconds())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%+.3fs\t%s\t%s\n", r.Pod, r.Node, r.UID, r.Start.Sub(zero).Seconds(), stop, r.StopReason)
	}
	w.Flush()
	return b.String()
}

package cluster

import (
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestRuntimeWatch_observe feeds one boot's watch the listings a fake
// runtime would give over a pod's life and checks the journal it keeps.
func TestRuntimeWatch_observe(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	j := NewJournal()
	w := newRuntimeWatch(nil, j, "node-1", "node-1-boot-1", zap.NewNop())

	running := func(id string, started float64) RuntimeContainer {
		return RuntimeContainer{ID: id, State: "RUNNING", Started: at(started)}
	}
	exited := func(id string, started, finished float64) RuntimeContainer {
		return RuntimeContainer{ID: id, State: "EXITED", Started: at(started), Finished: at(finished)}
	}
	db := func(cs ...RuntimeContainer) RuntimePod {
		return RuntimePod{Namespace: "default", Name: "db-0", UID: "uid-db", Containers: cs}
	}
	web := func(cs ...RuntimeContainer) RuntimePod {
		return RuntimePod{Namespace: "default", Name: "web-1", UID: "uid-web", Containers: cs}
	}
	job := func(cs ...RuntimeContainer) RuntimePod {
		return RuntimePod{Namespace: "default", Name: "job-1", UID: "uid-job", Containers: cs}
	}

	// A sandbox without containers yet runs nothing.
	w.observe([]RuntimePod{db()}, at(1))
	if runs := j.Runs(); len(runs) != 0 {
		t.Fatalf("after an empty sandbox: runs %+v, want none", runs)
	}
	// db-0 runs from its container's start, not from the poll.
	w.observe([]RuntimePod{db(running("c1", 1.5)), web(running("w1", 1.8))}, at(2))
	// Seen again: no second run.
	w.observe([]RuntimePod{db(running("c1", 1.5)), web(running("w1", 1.8))}, at(2.2))
	// db-0's container exits: the run ends at its finish time. web-1's
	// sandbox is gone from the listing: its run ends at the poll. A job's
	// container came and went between two polls.
	w.observe([]RuntimePod{db(exited("c1", 1.5, 2.3)), job(exited("j1", 2.25, 2.35))}, at(2.4))
	// The exited container, listed again, is not a new run.
	w.observe([]RuntimePod{db(exited("c1", 1.5, 2.3)), job(exited("j1", 2.25, 2.35))}, at(2.6))
	// A restart in the same sandbox is a new run.
	w.observe([]RuntimePod{db(exited("c1", 1.5, 2.3), running("c2", 2.7))}, at(2.8))
	// The node is powered off: its running containers stop then.
	j.stopBoot(w.boot, "crashed", at(3))

	type run struct {
		pod, reason string
		start, stop float64
	}
	want := []run{
		{"default/db-0", "stopped", 1.5, 2.3},
		{"default/web-1", "stopped", 1.8, 2.4},
		{"default/job-1", "stopped", 2.25, 2.35},
		{"default/db-0", "crashed", 2.7, 3},
	}
	got := j.Runs()
	if len(got) != len(want) {
		t.Fatalf("runs:\n%s\nwant %d", j.Table(t0), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Pod != w.pod || g.Node != "node-1" || g.BootID != "node-1-boot-1" || !g.Start.Equal(at(w.start)) || !g.Stop.Equal(at(w.stop)) || g.StopReason != w.reason {
			t.Errorf("run %d = %s %s %s %v-%v %q, want %s %v-%v %q", i, g.Pod, g.Node, g.BootID,
				g.Start.Sub(t0), g.Stop.Sub(t0), g.StopReason, w.pod, at(w.start).Sub(t0), at(w.stop).Sub(t0), w.reason)
		}
	}
	if o := j.Overlaps(); len(o) != 0 {
		t.Errorf("overlaps %v, want none", o)
	}
}

package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJournal_overlaps(t *testing.T) {
	t0 := time.Now()
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		op         string // start, stop, stopBoot
		pod, uid   string
		node, boot string
		at         int
	}
	cases := []struct {
		name  string
		steps []step
		want  []string
	}{
		{
			name: "one run",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
			},
		},
		{
			name: "moved after the stop",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"stop", "", "u1", "", "b1", 5},
				{"start", "default/db-0", "u2", "node-2", "b2", 6},
			},
		},
		{
			name: "a stop at the new start is no overlap",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"stopBoot", "", "", "", "b1", 5},
				{"start", "default/db-0", "u2", "node-2", "b2", 5},
			},
		},
		{
			name: "started elsewhere before the stop",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"start", "default/db-0", "u2", "node-2", "b2", 4},
				{"stopBoot", "", "", "", "b1", 5},
			},
			want: []string{"default/db-0"},
		},
		{
			name: "never stopped, started elsewhere",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"start", "default/db-0", "u2", "node-2", "b2", 10},
				{"stop", "", "u2", "", "b2", 11},
			},
			want: []string{"default/db-0"},
		},
		{
			name: "same node, new boot, is not two nodes",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"start", "default/db-0", "u1", "node-1", "b2", 3},
			},
		},
		{
			name: "other pods and namespaces are apart",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"start", "default/db-1", "u2", "node-2", "b2", 1},
				{"start", "other/db-0", "u3", "node-3", "b3", 1},
				{"start", "other/db-0", "u4", "node-4", "b4", 2},
			},
			want: []string{"other/db-0"},
		},
		{
			name: "a second start of a running pod is one run",
			steps: []step{
				{"start", "default/db-0", "u1", "node-1", "b1", 0},
				{"start", "default/db-0", "u1", "node-1", "b1", 3},
				{"stop", "", "u1", "", "b1", 4},
				{"start", "default/db-0", "u2", "node-2", "b2", 5},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := NewJournal()
			for _, s := range tc.steps {
				switch s.op {
				case "start":
					j.start(s.pod, s.uid, s.node, s.boot, at(s.at))
				case "stop":
					j.stop(s.uid, s.boot, "deleted", at(s.at))
				case "stopBoot":
					j.stopBoot(s.boot, "fenced", at(s.at))
				}
			}
			if got := j.Overlaps(); !slices.Equal(got, tc.want) {
				t.Errorf("Overlaps() = %q, want %q\n%s", got, tc.want, j.Table(t0))
			}
		})
	}
}

func TestJournal_stopNeverBeforeStart(t *testing.T) {
	t0 := time.Now()
	j := NewJournal()
	j.start("default/db-0", "u1", "node-1", "b1", t0.Add(time.Second))
	j.stopBoot("b1", "fenced", t0)
	runs := j.Runs()
	if len(runs) != 1 || !runs[0].Stop.Equal(runs[0].Start) || runs[0].StopReason != "fenced" {
		t.Fatalf("runs = %+v, want one stopped at its start, reason fenced", runs)
	}
	if tab := j.Table(t0); !strings.Contains(tab, "+1.000s") || !strings.Contains(tab, "fenced") {
		t.Errorf("table lacks the run's times or reason:\n%s", tab)
	}
}

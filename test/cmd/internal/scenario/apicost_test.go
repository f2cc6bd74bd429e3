package scenario

import (
	"math"
	"strings"
	"testing"

	"github.com/haagent/haagent/test/cluster"
)

func TestFitLine(t *testing.T) {
	f := FitLine([]float64{7, 20, 100}, []float64{1 + 0.5*7, 1 + 0.5*20, 1 + 0.5*100})
	if math.Abs(f.A-1) > 1e-9 || math.Abs(f.B-0.5) > 1e-9 {
		t.Errorf("FitLine = %+v, want a=1 b=0.5", f)
	}
	if got := f.At(5000); math.Abs(got-2501) > 1e-6 {
		t.Errorf("At(5000) = %v", got)
	}
	if f := FitLine([]float64{7, 7}, []float64{2, 4}); f.A != 3 || f.B != 0 {
		t.Errorf("FitLine with one x = %+v, want the mean", f)
	}
	p := FitProportional([]float64{1, 2}, []float64{2, 4})
	if p.B != 2 || p.At(10) != 20 || p.String() != "2·N" {
		t.Errorf("FitProportional = %+v (%s)", p, p)
	}
	tot := FitTotal([]float64{10, 100}, []float64{10 * (2 + 0.1*10), 100 * (2 + 0.1*100)})
	if math.Abs(tot.At(1000)-1000*(2+0.1*1000)) > 1e-6 || tot.String() != "N·(2 + 0.1·N)" {
		t.Errorf("FitTotal = %+v (%s)", tot, tot)
	}
	if s := (FitTotal([]float64{7, 20}, []float64{7, 20})).String(); s != "1·N" {
		t.Errorf("flat FitTotal = %q", s)
	}
	xs, ys := []float64{7, 20, 50}, []float64{1.77, 1.76, 1.76}
	if fl := FitLine(xs, ys).Flatten(xs, ys, 0.1); !fl.Flat || fl.B != 0 || math.Abs(fl.A-1.7633) > 1e-3 {
		t.Errorf("Flatten of noise = %+v", fl)
	}
	if fl := FitLine(xs, []float64{10, 27, 69}).Flatten(xs, []float64{10, 27, 69}, 0.1); fl.Flat {
		t.Errorf("Flatten of growth = %+v", fl)
	}
	if s := (Fit{A: 3, B: -0.25}).String(); s != "3 − 0.25·N" {
		t.Errorf("String = %q", s)
	}
}

func TestAPIWindow_roles(t *testing.T) {
	w := &APIWindow{Label: "idle", Nodes: 3, Coordinator: "node-1", PerAgent: []AgentAPI{
		{Node: "node-1", Coordinator: true},
		{Node: "node-2", RequestsPerSecond: 1, ClusterWideWatches: 1, MaxOpenWatches: 1,
			Watches: []cluster.WatchUse{{WatchTarget: cluster.WatchTarget{Resource: "nodes"}, MaxOpen: 1}}},
		{Node: "node-3"},
	}}
	w.MarkVictim("node-3")
	others := w.Others()
	if len(others) != 1 || others[0].Node != "node-2" {
		t.Fatalf("Others = %+v, want node-2 alone", others)
	}
	if c, ok := w.CoordinatorAgent(); !ok || c.Node != "node-1" {
		t.Errorf("CoordinatorAgent = %+v, %v", c, ok)
	}
	tab := w.APITable()
	for _, want := range []string{"coordinator node-1", "crashed node-3", "nodes, cluster-wide", "not measured"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

package plot

import (
	"strings"
	"testing"
)

func TestLineChart_logY(t *testing.T) {
	c := LineChart{Title: "t", XLabel: "N", YLabel: "req/s", LogX: true, LogY: true,
		Series: []LineSeries{
			{Name: "measured", X: []float64{7, 20, 100}, Y: []float64{0.5, 1.2, 6}},
			{Name: "model", X: []float64{7, 5000}, Y: []float64{0.5, 300}, Dashed: true, NoDots: true},
		},
		References: []RefLine{{Label: "target", Y: 0.1}},
	}
	b, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, "<circle") != 3 {
		t.Errorf("want 3 dots (the model has none):\n%s", s)
	}
	for _, want := range []string{">0.1<", ">1000<", "target", "(log scale)"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if _, err := (LineChart{}).SVG(); err == nil {
		t.Error("an empty chart drew")
	}
}

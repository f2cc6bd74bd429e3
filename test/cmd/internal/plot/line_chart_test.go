package plot

import (
	"encoding/xml"
	"fmt"
	"math"
	"strings"
	"testing"
)

func svgElements(t *testing.T, svg []byte) map[string]int {
	t.Helper()
	counts, err := ElementCounts(svg)
	if err != nil {
		t.Fatalf("%v\n%s", err, svg)
	}
	return counts
}

func TestLineChart_SVG(t *testing.T) {
	c := LineChart{
		Title: "detection <time>", XLabel: "members", YLabel: "seconds", LogX: true,
		Series: []LineSeries{
			{Name: "fast p50", X: []float64{50, 100, 1000}, Y: []float64{1, 2, 3}},
			{Name: "fast p99", X: []float64{50, 100, 1000}, Y: []float64{2, math.NaN(), 7.5}, Dashed: true},
		},
		References: []RefLine{{Label: "target 5 s", Y: 5}},
	}
	svg, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	counts := svgElements(t, svg)
	if counts["svg"] != 1 || counts["circle"] != 5 {
		t.Errorf("elements %v: want one svg and a circle per drawn point (5)", counts)
	}
	s := string(svg)
	for _, want := range []string{"detection &lt;time&gt;", "members (log scale)", "target 5 s", "fast p99", `stroke-dasharray="6 4"`, ">1000<"} {
		if !strings.Contains(s, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	// The NaN breaks the dashed line: two moves, no line to the gap.
	if got := strings.Count(s, `d="M`); got != 2 {
		t.Errorf("%d paths, want 2", got)
	}
	for _, p := range strings.Split(s, "\n") {
		if strings.Contains(p, `stroke-dasharray="6 4"/>`) && strings.HasPrefix(p, "<path") && strings.Count(p, "M") != 2 {
			t.Errorf("dashed path not broken at the NaN: %s", p)
		}
	}
}

// On a log axis 100 lies half way between 10 and 1000.
func TestLineChart_logScalePlacesPoints(t *testing.T) {
	c := LineChart{LogX: true, Width: 600, Height: 300, Series: []LineSeries{{Name: "s", X: []float64{10, 100, 1000}, Y: []float64{1, 1, 1}}}}
	svg, err := c.SVG()
	if err != nil {
		t.Fatal(err)
	}
	var xs []float64
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "circle" {
			for _, a := range se.Attr {
				if a.Name.Local == "cx" {
					var v float64
					if _, err := fmt.Sscan(a.Value, &v); err != nil {
						t.Fatal(err)
					}
					xs = append(xs, v)
				}
			}
		}
	}
	if len(xs) != 3 {
		t.Fatalf("circles at %v, want 3", xs)
	}
	if mid := (xs[0] + xs[2]) / 2; math.Abs(xs[1]-mid) > 0.2 {
		t.Errorf("x of 100 is %.1f, want %.1f half way between %v and %v", xs[1], mid, xs[0], xs[2])
	}
}

func TestLineChart_errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    LineChart
		want string
	}{
		{"empty", LineChart{}, "nothing to draw"},
		{"lengths", LineChart{Series: []LineSeries{{Name: "a", X: []float64{1}, Y: nil}}}, `series "a" has 1 x and 0 y values`},
		{"log of zero", LineChart{LogX: true, Series: []LineSeries{{Name: "a", X: []float64{0}, Y: []float64{1}}}}, "x 0 on a log axis"},
		{"all missing", LineChart{Series: []LineSeries{{Name: "a", X: []float64{1}, Y: []float64{math.NaN()}}}}, "nothing to draw"},
		{"too small", LineChart{Width: 100, Height: 100, Series: []LineSeries{{Name: "a", X: []float64{1}, Y: []float64{1}}}}, "no room"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.SVG()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLineTicks(t *testing.T) {
	for _, tc := range []struct {
		max, top, step float64
	}{
		{7.3, 8, 2}, {12, 15, 5}, {0.9, 1, 0.2}, {3000, 3000, 1000}, {1, 1, 0.2},
	} {
		ticks, top := lineTicks(tc.max)
		if math.Abs(top-tc.top) > 1e-9 || math.Abs(ticks[1]-tc.step) > 1e-9 || ticks[0] != 0 {
			t.Errorf("lineTicks(%v) = %v (top %v), want step %v top %v", tc.max, ticks, top, tc.step, tc.top)
		}
	}
}

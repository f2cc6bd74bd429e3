package plot

import (
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"
)

// wellFormed parses doc as XML and counts its elements by name.
func wellFormed(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(doc)))
	count := map[string]int{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return count
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, doc)
		}
		if se, ok := tok.(xml.StartElement); ok {
			count[se.Name.Local]++
		}
	}
}

func TestStripChart_SVG(t *testing.T) {
	c := StripChart{
		Title:  "crash <to> phase & more",
		XLabel: "seconds",
		Log:    true,
		Groups: []Group{
			{Label: "cordoned", Series: []Series{
				{Name: "haagent", Color: "#1b9e77", Values: []float64{1.2, 1.5, 1.1}},
				{Name: "stock", Color: "#7570b3"}, // absent: no band, no text
			}},
			{Label: "evicted", Missing: "never", Series: []Series{
				{Name: "haagent", Color: "#1b9e77", Values: []float64{4, 5}},
				{Name: "stock", Color: "#7570b3"},
			}},
			{Label: "gossip", Missing: "never", Series: []Series{
				{Name: "haagent", Color: "#1b9e77", Values: []float64{1}},
				{Name: "stock", Color: "#7570b3", Missing: "no such phase"},
			}},
		},
	}
	doc := c.SVG()
	count := wellFormed(t, doc)
	if count["svg"] != 1 {
		t.Errorf("%d svg elements, want 1", count["svg"])
	}
	if count["circle"] != 6 {
		t.Errorf("%d dots, want one per sample (6)", count["circle"])
	}
	s := string(doc)
	for _, want := range []string{"crash &lt;to&gt; phase &amp; more", "stock: never", "stock: no such phase", ">1<", ">10<"} {
		if !strings.Contains(s, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	if strings.Count(s, "stock: never") != 1 {
		t.Errorf("the missing text appears %d times, want once (only where Missing is set)", strings.Count(s, "stock: never"))
	}
}

func TestStripChart_empty(t *testing.T) {
	count := wellFormed(t, StripChart{Title: "nothing"}.SVG())
	if count["circle"] != 0 {
		t.Errorf("%d dots in an empty chart", count["circle"])
	}
}

func TestAxis_log(t *testing.T) {
	a := newAxis(0.8, 350, true, 100, 500)
	if a.lo != -1 || a.hi != 3 {
		t.Fatalf("decades %v..%v, want -1..3", a.lo, a.hi)
	}
	for v, want := range map[float64]float64{0.1: 100, 10: 300, 1000: 500} {
		if got := a.pos(v); math.Abs(got-want) > 1e-9 {
			t.Errorf("pos(%v) = %v, want %v", v, got, want)
		}
	}
	// Four decades: powers of ten only.
	ticks := a.ticks()
	want := []float64{0.1, 1, 10, 100, 1000}
	if len(ticks) != len(want) {
		t.Fatalf("ticks %v, want %v", ticks, want)
	}
	for i := range want {
		if d := ticks[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Errorf("tick %d = %v, want %v", i, ticks[i], want[i])
		}
	}
}

func TestAxis_linear(t *testing.T) {
	a := newAxis(3, 47, false, 0, 100)
	if a.lo != 0 || a.hi != 50 {
		t.Errorf("linear axis %v..%v, want 0..50", a.lo, a.hi)
	}
	if ticks := a.ticks(); len(ticks) != 6 || ticks[5] != 50 {
		t.Errorf("ticks %v, want 0, 10, ... 50", ticks)
	}
}

func TestFmtNum(t *testing.T) {
	for in, want := range map[float64]string{0.5: "0.5", 2: "2", 100: "100", 1.25: "1.25", 0.001: "0.001"} {
		if got := fmtNum(in); got != want {
			t.Errorf("fmtNum(%v) = %q, want %q", in, got, want)
		}
	}
}

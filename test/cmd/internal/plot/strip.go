package plot

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Series is one set of samples, drawn in one colour.
type Series struct {
	Name string
	// Color is an SVG colour, such as "#1b9e77".
	Color  string
	Values []float64
	// Missing, when there are no values, is written in the band instead of
	// the group's Missing.
	Missing string
}

// Group is one row of the chart: a label and a band per series. A series
// without values leaves its band empty, with Missing written in it.
type Group struct {
	Label  string
	Series []Series
	// Missing is written in the band of a series without values ("never",
	// "not measured"); empty writes nothing.
	Missing string
}

// StripChart is a chart of distributions, one group per row.
type StripChart struct {
	Title  string
	XLabel string
	// Log draws the axis in powers of ten; values ≤ 0 are left out.
	Log    bool
	Groups []Group
	// Width in pixels; 0 means 960.
	Width int
}

// Layout, in pixels.
const (
	labelWidth = 250
	rightPad   = 30
	topPad     = 56
	bandHeight = 16
	groupGap   = 12
	axisHeight = 46
)

// SVG renders the chart.
func (c StripChart) SVG() []byte {
	width := c.Width
	if width <= 0 {
		width = 960
	}
	lo, hi, ok := c.extent()
	if !ok {
		lo, hi = 0, 1
	}
	ax := newAxis(lo, hi, c.Log, float64(labelWidth), float64(width-rightPad))
	height := topPad + axisHeight
	for _, g := range c.Groups {
		height += len(g.Series)*bandHeight + groupGap
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", 10, esc(c.Title))
	c.legend(&b)

	plotTop, plotBottom := float64(topPad), float64(height-axisHeight)
	for _, t := range ax.ticks() {
		x := ax.pos(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x, plotTop, x, plotBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`+"\n", x, plotBottom+16, esc(tickLabel(t)))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", labelWidth, plotBottom, width-rightPad, plotBottom)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", (float64(labelWidth)+float64(width-rightPad))/2, height-8, esc(c.XLabel))

	y := plotTop
	for gi, g := range c.Groups {
		gh := float64(len(g.Series) * bandHeight)
		if gi%2 == 0 {
			fmt.Fprintf(&b, `<rect x="0" y="%.1f" width="%d" height="%.1f" fill="#f6f6f6"/>`+"\n", y-groupGap/2, width, gh+groupGap)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", 10, y+gh/2, esc(g.Label))
		for si, s := range g.Series {
			mid := y + float64(si*bandHeight) + bandHeight/2
			c.band(&b, ax, s, mid, g.Missing)
		}
		y += gh + groupGap
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// band draws one series: a line from min to max, a box from p50 to p90, a
// bar at p50, and every sample as a dot.
func (c StripChart) band(b *strings.Builder, ax axis, s Series, mid float64, missing string) {
	vs := c.usable(s.Values)
	if len(vs) == 0 {
		if s.Missing != "" {
			missing = s.Missing
		}
		if missing != "" {
			fmt.Fprintf(b, `<text x="%d" y="%.1f" dominant-baseline="middle" fill="%s" font-style="italic">%s: %s</text>`+"\n", labelWidth+6, mid, s.Color, esc(s.Name), esc(missing))
		}
		return
	}
	slices.Sort(vs)
	p50, p90 := rank(vs, 0.5), rank(vs, 0.9)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1"/>`+"\n", ax.pos(vs[0]), mid, ax.pos(vs[len(vs)-1]), mid, s.Color)
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s" fill-opacity="0.25" stroke="%s"/>`+"\n",
		ax.pos(p50), mid-5, max(ax.pos(p90)-ax.pos(p50), 1), 10, s.Color, s.Color)
	for _, v := range vs {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s" fill-opacity="0.6"><title>%s: %s s</title></circle>`+"\n", ax.pos(v), mid, s.Color, esc(s.Name), fmtNum(v))
	}
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", ax.pos(p50), mid-7, ax.pos(p50), mid+7, s.Color)
}

// legend names the series of the first group, with their colours.
func (c StripChart) legend(b *strings.Builder) {
	if len(c.Groups) == 0 {
		return
	}
	x := 10.0
	for _, s := range c.Groups[0].Series {
		fmt.Fprintf(b, `<rect x="%.1f" y="32" width="12" height="12" fill="%s"/>`+"\n", x, s.Color)
		fmt.Fprintf(b, `<text x="%.1f" y="42">%s</text>`+"\n", x+16, esc(s.Name))
		x += 24 + 7*float64(len(s.Name))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="42" fill="#555">dots: samples; bar: p50; box: p50 to p90; line: min to max</text>`+"\n", x+10)
}

func (c StripChart) usable(vs []float64) []float64 {
	var out []float64
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) || (c.Log && v <= 0) {
			continue
		}
		out = append(out, v)
	}
	return out
}

// extent is the smallest and largest value drawn.
func (c StripChart) extent() (lo, hi float64, ok bool) {
	for _, g := range c.Groups {
		for _, s := range g.Series {
			for _, v := range c.usable(s.Values) {
				if !ok {
					lo, hi, ok = v, v, true
				}
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	return lo, hi, ok
}

// rank is the nearest-rank q-quantile of sorted vs.
func rank(vs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(vs)))) - 1
	return vs[min(max(i, 0), len(vs)-1)]
}

// axis maps values to x positions.
type axis struct {
	lo, hi float64 // in axis units: log10 of the value when log
	log    bool
	x0, x1 float64
}

func newAxis(lo, hi float64, log bool, x0, x1 float64) axis {
	if log {
		lo, hi = math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if hi <= lo {
			hi = lo + 1
		}
		return axis{lo: lo, hi: hi, log: true, x0: x0, x1: x1}
	}
	lo = min(lo, 0)
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	hi = math.Ceil(hi/step) * step
	return axis{lo: lo, hi: hi, x0: x0, x1: x1}
}

func (a axis) pos(v float64) float64 {
	u := v
	if a.log {
		u = math.Log10(v)
	}
	return a.x0 + (u-a.lo)/(a.hi-a.lo)*(a.x1-a.x0)
}

// ticks are 1, 2 and 5 times each power of ten on a log axis (only the
// powers when there are more than three decades), round steps on a linear one.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		mults := []float64{1, 2, 5}
		if a.hi-a.lo > 3 {
			mults = []float64{1}
		}
		for e := a.lo; e <= a.hi; e++ {
			for _, m := range mults {
				v := m * math.Pow(10, e)
				if math.Log10(v) <= a.hi+1e-9 {
					out = append(out, v)
				}
			}
		}
		return out
	}
	step := niceStep((a.hi - a.lo) / 5)
	for v := a.lo; v <= a.hi+step/2; v += step {
		out = append(out, v)
	}
	return out
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func tickLabel(v float64) string {
	return fmtNum(v)
}

// fmtNum writes a number without trailing zeros: 0.5, 2, 100, 1.25.
func fmtNum(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&quot;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

package plot

// A line chart as SVG (the same as haagent-sim's, exported here for the
// benchmark's API-cost plots): a few series of (x, y) points, a linear or
// logarithmic x axis, a linear y axis from zero or a logarithmic one, and
// horizontal reference lines such as a target.

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
)

// LineSeries is one line. Points whose Y is NaN are not drawn and break the
// line; X and Y have the same length.
type LineSeries struct {
	Name string
	X, Y []float64
	// Dashed draws the line dashed, e.g. p99 beside a solid p50.
	Dashed bool
	// NoDots draws the line without a dot at each point (a fitted model).
	NoDots bool
	// Color is an SVG colour; empty picks one from a fixed LinePalette.
	Color string
}

// RefLine is a horizontal line across the plot, e.g. a target.
type RefLine struct {
	Label string
	Y     float64
}

// LineChart is one plot.
type LineChart struct {
	Title, XLabel, YLabel string
	// LogX draws the x axis on a log10 scale; every X must be positive.
	LogX bool
	// LogY draws the y axis on a log10 scale, from the power of ten at or
	// below the smallest positive Y; Ys ≤ 0 are not drawn.
	LogY bool
	// XTicks are the x values to label; empty labels every distinct X of
	// the series.
	XTicks     []float64
	Series     []LineSeries
	References []RefLine
	// Width and Height in pixels; zero means 720 × 420.
	Width, Height int
}

var LinePalette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"}

// Margins of the plot area inside the picture, in pixels.
const (
	lineMarginLeft   = 70
	lineMarginRight  = 190 // room for the legend
	lineMarginTop    = 40
	lineMarginBottom = 55
)

// WriteSVG draws the chart.
func (c LineChart) WriteSVG(w io.Writer) error {
	b, err := c.SVG()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// SVG returns the chart as an SVG document.
func (c LineChart) SVG() ([]byte, error) {
	width, height := c.Width, c.Height
	if width == 0 {
		width = 720
	}
	if height == 0 {
		height = 420
	}
	if width <= lineMarginLeft+lineMarginRight || height <= lineMarginTop+lineMarginBottom {
		return nil, fmt.Errorf("plot: %d×%d pixels leave no room to plot", width, height)
	}
	xmin, xmax, ymax, ymin := math.Inf(1), math.Inf(-1), 0.0, math.Inf(1)
	points := 0
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("plot: series %q has %d x and %d y values", s.Name, len(s.X), len(s.Y))
		}
		for i, x := range s.X {
			if c.LogX && !(x > 0) {
				return nil, fmt.Errorf("plot: series %q: x %g on a log axis", s.Name, x)
			}
			if math.IsNaN(s.Y[i]) || (c.LogY && !(s.Y[i] > 0)) {
				continue
			}
			if c.LogY {
				ymin = math.Min(ymin, s.Y[i])
			}
			if s.Y[i] < 0 {
				return nil, fmt.Errorf("plot: series %q: negative y %g", s.Name, s.Y[i])
			}
			xmin, xmax, ymax = math.Min(xmin, x), math.Max(xmax, x), math.Max(ymax, s.Y[i])
			points++
		}
	}
	if points == 0 {
		return nil, errors.New("plot: nothing to draw")
	}
	for _, r := range c.References {
		ymax = math.Max(ymax, r.Y)
		if c.LogY && r.Y > 0 {
			ymin = math.Min(ymin, r.Y)
		}
	}
	ticks := c.XTicks
	if len(ticks) == 0 {
		ticks = lineXs(c.Series)
	}
	for _, t := range ticks {
		if !c.LogX || t > 0 {
			xmin, xmax = math.Min(xmin, t), math.Max(xmax, t)
		}
	}
	yticks, ytop := lineTicks(ymax)
	ybot := 0.0
	if c.LogY {
		ybot = math.Pow(10, math.Floor(math.Log10(ymin)))
		ytop = math.Pow(10, math.Ceil(math.Log10(ymax)))
		if ytop <= ybot {
			ytop = ybot * 10
		}
		yticks = nil
		for t := ybot; t <= ytop*1.0001; t *= 10 {
			yticks = append(yticks, t)
		}
	}

	pw, ph := float64(width-lineMarginLeft-lineMarginRight), float64(height-lineMarginTop-lineMarginBottom)
	fx := func(x float64) float64 {
		lo, hi, v := xmin, xmax, x
		if c.LogX {
			lo, hi, v = math.Log10(lo), math.Log10(hi), math.Log10(v)
		}
		if hi == lo {
			return lineMarginLeft + pw/2
		}
		// A little room at both ends, so no point sits on an axis.
		return lineMarginLeft + pw*(0.04+0.92*(v-lo)/(hi-lo))
	}
	fy := func(y float64) float64 {
		if c.LogY {
			return lineMarginTop + ph*(1-(math.Log10(y)-math.Log10(ybot))/(math.Log10(ytop)-math.Log10(ybot)))
		}
		return lineMarginTop + ph*(1-y/ytop)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", lineMarginLeft, lineEsc(c.Title))
	// Grid and y labels.
	for _, t := range yticks {
		y := fy(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", lineMarginLeft, y, lineMarginLeft+pw, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", lineMarginLeft-6, y+4, lineNum(t))
	}
	// x ticks.
	for _, t := range ticks {
		if c.LogX && t <= 0 {
			continue
		}
		x := fx(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", x, lineMarginTop, x, lineMarginTop+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, lineMarginTop+ph+16, lineNum(t))
	}
	// Axes.
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="black"/>`+"\n", lineMarginLeft, lineMarginTop, lineMarginLeft, lineMarginTop+ph)
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", lineMarginLeft, lineMarginTop+ph, lineMarginLeft+pw, lineMarginTop+ph)
	xl := c.XLabel
	if c.LogX {
		xl += " (log scale)"
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", lineMarginLeft+pw/2, height-12, lineEsc(xl))
	fmt.Fprintf(&b, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", lineMarginTop+ph/2, lineEsc(c.YLabel))
	// References.
	for _, r := range c.References {
		if c.LogY && !(r.Y > 0) {
			continue
		}
		y := fy(r.Y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="2 4"/>`+"\n", lineMarginLeft, y, lineMarginLeft+pw, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", lineMarginLeft+pw-4, y-4, lineEsc(r.Label))
	}
	// Series and legend.
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = LinePalette[i%len(LinePalette)]
		}
		dash := ""
		if s.Dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var path bytes.Buffer
		pen := false
		for j := range s.X {
			if math.IsNaN(s.Y[j]) || (c.LogY && !(s.Y[j] > 0)) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%.1f %.1f ", cmd, fx(s.X[j]), fy(s.Y[j]))
			pen = true
		}
		if path.Len() > 0 {
			fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", bytes.TrimSpace(path.Bytes()), lineEsc(color), dash)
		}
		for j := range s.X {
			if !math.IsNaN(s.Y[j]) && !(c.LogY && !(s.Y[j] > 0)) && !s.NoDots {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s: %s, %s</title></circle>`+"\n",
					fx(s.X[j]), fy(s.Y[j]), lineEsc(color), lineEsc(s.Name), lineNum(s.X[j]), lineNum(s.Y[j]))
			}
		}
		ly := float64(lineMarginTop + 10 + 20*i)
		lx := float64(width - lineMarginRight + 15)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`+"\n", lx, ly, lx+28, ly, lineEsc(color), dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+34, ly+4, lineEsc(s.Name))
	}
	b.WriteString("</svg>\n")
	return b.Bytes(), nil
}

// lineXs is every X of the series, ascending.
func lineXs(series []LineSeries) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, s := range series {
		for _, x := range s.X {
			if !seen[x] {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// lineTicks returns y ticks from 0 at a step of 1, 2 or 5 times a power of
// ten, about five of them, and the top of the axis (the last tick).
func lineTicks(max float64) ([]float64, float64) {
	if !(max > 0) {
		return []float64{0, 1}, 1
	}
	raw := max / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	step := pow
	for _, m := range []float64{1, 2, 5, 10} {
		if m*pow >= raw {
			step = m * pow
			break
		}
	}
	var ticks []float64
	for i := 0; ; i++ {
		t := float64(i) * step
		ticks = append(ticks, t)
		if t >= max {
			return ticks, t
		}
	}
}

// num prints a tick or value briefly: 1000, 2.5, 0.25.
func lineNum(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func lineEsc(s string) string { return html.EscapeString(s) }

// ElementCounts parses svg as XML and counts its elements by name: for
// tests of the charts, here and in the programs that draw them.
func ElementCounts(svg []byte) (map[string]int, error) {
	d := xml.NewDecoder(bytes.NewReader(svg))
	counts := map[string]int{}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return counts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			counts[se.Name.Local]++
		}
	}
}

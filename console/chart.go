package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// The charts are SVG drawn here, on the server: no script, no chart
// library. Every chart is an <svg role="img"> with a <title> and <desc>
// (its summary in words), axis labels, and a legend; the page puts a
// plain table of the same numbers beside it. Colours are presentation
// attributes (the console's Content-Security-Policy allows no inline
// style) and each series also differs by dash pattern, so the lines can
// be told apart without colour.

// chartSeries is one line of a chart.
type chartSeries struct {
	Name   string
	Values []float64 // one per x; NaN = no value (the line breaks)
}

// lineChart is a time-series chart.
type lineChart struct {
	ID     string // unique on the page: the ids of its title and desc
	Title  string
	Desc   string // the chart in words
	YLabel string // the y axis, with its unit
	Times  []time.Time
	Step   time.Duration // the width of one x step
	Series []chartSeries
	// YFormat labels the y ticks; nil = a plain number.
	YFormat func(float64) string
	// Counts makes the y ticks whole numbers.
	Counts bool
	// Empty is written across the plot when no series has a value above
	// zero ("" = nothing).
	Empty string
}

// Drawing constants of lineChart (SVG user units).
const (
	chartW, chartH                          = 720.0, 260.0
	chartLeft, chartRight, chartTop, chartB = 64.0, 12.0, 12.0, 52.0
)

// seriesStyle are the strokes of the series in order: colours with a
// contrast of at least 3:1 on white, and distinct dash patterns.
var seriesStyle = []struct{ Color, Dash string }{
	{"#0b5cad", ""}, {"#a3201a", "6 3"}, {"#17582b", "2 3"}, {"#7a4b00", "10 3 2 3"},
	{"#5b2a86", "4 4"}, {"#00606b", "1 2"}, {"#8a3b00", "8 2"}, {"#3d3d3d", "3 2 1 2"},
}

// xmlText escapes s for XML text and attribute values.
func xmlText(s string) string { return template.HTMLEscapeString(s) }

// svg draws the chart.
func (c lineChart) svg() template.HTML {
	var b strings.Builder
	plotW, plotH := chartW-chartLeft-chartRight, chartH-chartTop-chartB
	ymax := 0.0
	for _, s := range c.Series {
		for _, v := range s.Values {
			if !math.IsNaN(v) && v > ymax {
				ymax = v
			}
		}
	}
	step, top := niceScale(ymax)
	if c.Counts && step < 1 {
		step, top = 1, math.Max(1, math.Ceil(ymax))
	}
	yfmt := c.YFormat
	if yfmt == nil {
		yfmt = formatCount
	}
	n := len(c.Times)
	x := func(i int) float64 {
		if n <= 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + plotW*float64(i)/float64(n-1)
	}
	y := func(v float64) float64 { return chartTop + plotH*(1-v/top) }

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 %g %g" width="100%%" role="img" aria-labelledby="%s-title %s-desc">`,
		chartW, chartH, xmlText(c.ID), xmlText(c.ID))
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, xmlText(c.ID), xmlText(c.Title), xmlText(c.ID), xmlText(c.Desc))
	// Grid and y ticks.
	for v := 0.0; v <= top+step/2; v += step {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d5dbe1" stroke-width="1"/>`, chartLeft, y(v), chartLeft+plotW, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="11" fill="#4a5260">%s</text>`, chartLeft-6, y(v)+4, xmlText(yfmt(v)))
	}
	// Axes.
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1b1f24" stroke-width="1"/>`, chartLeft, chartTop, chartLeft, chartTop+plotH)
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1b1f24" stroke-width="1"/>`, chartLeft, chartTop+plotH, chartLeft+plotW, chartTop+plotH)
	// X ticks: about six, on round times.
	for _, i := range timeTicks(c.Times, 6) {
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#1b1f24" stroke-width="1"/>`, x(i), chartTop+plotH, x(i), chartTop+plotH+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#4a5260">%s</text>`, x(i), chartTop+plotH+17, c.Times[i].UTC().Format("15:04"))
	}
	// Axis labels.
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="12" fill="#1b1f24">time (UTC, %s steps)</text>`,
		chartLeft+plotW/2, chartH-18, xmlText(formatStep(c.Step)))
	fmt.Fprintf(&b, `<text transform="translate(14 %.1f) rotate(-90)" text-anchor="middle" font-size="12" fill="#1b1f24">%s</text>`, chartTop+plotH/2, xmlText(c.YLabel))
	// Lines.
	for si, s := range c.Series {
		st := seriesStyle[si%len(seriesStyle)]
		var d strings.Builder
		pen := false
		for i, v := range s.Values {
			if math.IsNaN(v) {
				pen = false
				continue
			}
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, x(i), y(v))
			if !pen && (i+1 >= len(s.Values) || math.IsNaN(s.Values[i+1])) {
				d.WriteString("l0 0 ") // a lone point: a dot, by the round cap
			}
			pen = true
		}
		if d.Len() == 0 {
			continue
		}
		dash := ""
		if st.Dash != "" {
			dash = ` stroke-dasharray="` + st.Dash + `"`
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"%s><title>%s</title></path>`,
			strings.TrimSpace(d.String()), st.Color, dash, xmlText(s.Name))
	}
	if ymax == 0 && c.Empty != "" {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="14" fill="#4a5260">%s</text>`, chartLeft+plotW/2, chartTop+plotH/2, xmlText(c.Empty))
	}
	// Legend.
	lx := chartLeft
	for si, s := range c.Series {
		st := seriesStyle[si%len(seriesStyle)]
		dash := ""
		if st.Dash != "" {
			dash = ` stroke-dasharray="` + st.Dash + `"`
		}
		ly := chartH - 4
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`, lx, ly-4, lx+22, ly-4, st.Color, dash)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#1b1f24">%s</text>`, lx+26, ly, xmlText(s.Name))
		lx += 40 + 6.5*float64(len([]rune(s.Name)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text in it went through xmlText
}

// niceScale returns a tick step of 1, 2 or 5 × 10^k and the axis top (a
// multiple of it, at least max; at least 1) for about four ticks.
func niceScale(max float64) (step, top float64) {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return 0.25, 1
	}
	raw := max / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / mag; {
	case f <= 1:
		step = mag
	case f <= 2:
		step = 2 * mag
	case f <= 5:
		step = 5 * mag
	default:
		step = 10 * mag
	}
	return step, math.Ceil(max/step) * step
}

// timeTicks picks about want indexes of times that fall on round hours
// (or every index, when there are few).
func timeTicks(times []time.Time, want int) []int {
	if len(times) == 0 {
		return nil
	}
	span := times[len(times)-1].Sub(times[0])
	var every time.Duration
	for _, d := range []time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 6 * time.Hour} {
		every = d
		if span/d <= time.Duration(want) {
			break
		}
	}
	var out []int
	for i, t := range times {
		if t.UTC().Truncate(every).Equal(t.UTC()) {
			out = append(out, i)
		}
	}
	return out
}

func formatCount(v float64) string {
	if v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// formatMillis labels a latency axis in milliseconds.
func formatMillis(v float64) string { return formatCount(v) + " ms" }

func formatStep(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return fmt.Sprintf("%d min", d/time.Minute)
}

// sparkline draws a tenant's recent activity for the tenants page: its
// requests (solid) and refusals (dashed, red) per step, on one scale,
// with the totals as its accessible name.
func sparkline(s Series) template.HTML {
	const w, h = 120.0, 28.0
	n := max(len(s.Requests), len(s.Refusals))
	var total, refused float64
	peak := 0.0
	for _, v := range s.Requests {
		total += v
		peak = max(peak, v)
	}
	for _, v := range s.Refusals {
		refused += v
		peak = max(peak, v)
	}
	label := fmt.Sprintf("%s requests, %s refused in the last 24 hours", formatCount(total), formatCount(refused))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s"><title>%s</title>`,
		w, h, w, h, xmlText(label), xmlText(label))
	line := func(vals []float64, color, dash string) {
		if len(vals) == 0 || peak == 0 {
			return
		}
		var pts strings.Builder
		for i, v := range vals {
			px := w / 2
			if n > 1 {
				px = w * float64(i) / float64(n-1)
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", px, h-1-(h-2)*v/peak)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"%s/>`, strings.TrimSpace(pts.String()), color, dash)
	}
	fmt.Fprintf(&b, `<line x1="0" y1="%g" x2="%g" y2="%g" stroke="#c9d0d8" stroke-width="1"/>`, h-0.5, w, h-0.5)
	line(s.Requests, "#0b5cad", "")
	line(s.Refusals, "#a3201a", ` stroke-dasharray="3 2"`)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// chartFuncs are the chart pages' template functions.
var chartFuncs = template.FuncMap{
	"millis": formatLatency,
	"step":   formatStep,
	// inc and before are the jobs page's: a 1-based step, a due date.
	"inc":    func(i int) int { return i + 1 },
	"before": func(a, b time.Time) bool { return a.Before(b) },
	"clock":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
}

// formatLatency shows a latency estimate in milliseconds; "—" for none.
func formatLatency(d time.Duration) string {
	if d == 0 {
		return "—"
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'g', 3, 64) + " ms"
}

package console

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// wellFormed parses s as XML, failing the test if it is not.
func wellFormed(t *testing.T, s string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
	}
}

func TestLineChartSVG(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	times := make([]time.Time, 12)
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * 5 * time.Minute)
	}
	nan := math.NaN()
	hostile := `Acme <script>alert("x")</script> & 'co'`
	for _, c := range []lineChart{
		{ID: "a", Title: hostile, Desc: hostile, YLabel: "requests", Times: times, Step: 5 * time.Minute,
			Series: []chartSeries{{hostile, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 120}}, {"p99", []float64{nan, 3, nan, nan, 4, 5, nan, nan, nan, nan, nan, 1}}}},
		{ID: "empty", Title: "nothing", Times: times, Step: 5 * time.Minute},
		{ID: "one", Title: "one point", Times: times[:1], Step: 5 * time.Minute, Series: []chartSeries{{"x", []float64{0}}}},
		{ID: "none", Title: "no times"},
	} {
		svg := string(c.svg())
		wellFormed(t, svg)
		if strings.Contains(svg, "<script") || (c.ID == "a" && !strings.Contains(svg, "&lt;script&gt;")) {
			t.Errorf("%s: tenant text not escaped:\n%s", c.ID, svg)
		}
		if !strings.Contains(svg, `<title id="`+c.ID+`-title">`) || !strings.Contains(svg, `role="img"`) || !strings.Contains(svg, "time (UTC") {
			t.Errorf("%s: no title, role or axis label:\n%s", c.ID, svg)
		}
	}
	// Gaps break the line: the p99 series has three pieces, one a lone dot.
	svg := string(lineChart{ID: "g", Times: times, Step: 5 * time.Minute,
		Series: []chartSeries{{"p99", []float64{nan, 3, nan, nan, 4, 5, nan, nan, nan, nan, nan, 1}}}}.svg())
	path := svg[strings.Index(svg, `<path d="`)+9:]
	path = path[:strings.IndexByte(path, '"')]
	if strings.Count(path, "M") != 3 || strings.Count(path, "l0 0") != 2 {
		t.Errorf("path %q: want 3 pieces, 2 of them dots", path)
	}
}

func TestNiceScale(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ max, step, top float64 }{
		{0, 0.25, 1}, {1, 0.5, 1}, {7, 2, 8}, {120, 50, 150}, {1000, 500, 1000}, {3.2, 1, 4}, {9, 5, 10},
	} {
		if step, top := niceScale(c.max); step != c.step || top != c.top {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.max, step, top, c.step, c.top)
		}
	}
}

func TestSparklineSVG(t *testing.T) {
	t.Parallel()
	for _, s := range []Series{
		{Requests: []float64{0, 1, 5, 2}, Refusals: []float64{0, 0, 3, 0}, Step: time.Hour},
		{Requests: []float64{0, 0}, Refusals: []float64{0, 0}},
		{},
	} {
		svg := string(sparkline(s))
		wellFormed(t, svg)
		if !strings.Contains(svg, "aria-label=") {
			t.Errorf("no accessible name: %s", svg)
		}
	}
	if svg := string(sparkline(Series{Requests: []float64{0, 1, 5, 2}, Refusals: []float64{0, 0, 3, 0}})); !strings.Contains(svg, "8 requests, 3 refused") || strings.Count(svg, "<polyline") != 2 {
		t.Errorf("sparkline: %s", svg)
	}
}

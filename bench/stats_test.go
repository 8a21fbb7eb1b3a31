package bench

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"Single", []float64{7}, 50, 7},
		{"MedianOdd", []float64{3, 1, 2}, 50, 2},
		{"MedianEvenInterpolates", []float64{4, 1, 3, 2}, 50, 2.5},
		{"Zero", []float64{5, 1, 9}, 0, 1},
		{"Hundred", []float64{5, 1, 9}, 100, 9},
		{"P95Of1To101", seq(101), 95, 96},
		{"P99Of1To101", seq(101), 99, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.xs, tt.p); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentile_EmptyIsNaN(t *testing.T) {
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil) = %v, want NaN", got)
	}
	if s := Summarize(nil); s.N != 0 || !math.IsNaN(s.P50) {
		t.Errorf("Summarize(nil) = %+v, want N=0 and NaN P50", s)
	}
}

func TestPercentile_DoesNotReorderInput(t *testing.T) {
	xs := []float64{3, 1, 2}
	Percentile(xs, 50)
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Errorf("input reordered to %v", xs)
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize(seq(100))
	if s.N != 100 || s.Min != 1 || s.Max != 100 || s.Mean != 50.5 || s.P50 != 50.5 {
		t.Errorf("Summarize(1..100) = %+v", s)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func TestCountJSONString(t *testing.T) {
	prefix := []byte(`{"stream":"stdout","data":"`)
	tests := []struct {
		line string
		want int64
		ok   bool
	}{
		{`{"stream":"stdout","data":"hi\n"}` + "\n", 3, true},
		{`{"stream":"stdout","data":"\u0000\u0000é\"x"}`, 6, true},
		{`{"stream":"stdout","data":"\ud83d\ude00"}`, 4, true},
		{`{"stream":"exit","data":"","exit_code":0}`, 0, false},
		{`{"stream":"stdout","data":"x","extra":1}`, 0, false},
	}
	for _, tt := range tests {
		got, ok := countJSONString([]byte(tt.line), prefix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("countJSONString(%s) = %d, %v; want %d, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

package bench

import (
	"math"
	"slices"
	"time"
)

// Summary describes one sample set of durations in milliseconds.
type Summary struct {
	N   int     `json:"n"`
	Min float64 `json:"min_ms"`
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
	// Mean is the arithmetic mean; medians are what the report quotes.
	Mean float64 `json:"mean_ms"`
}

// Percentile returns the p-th percentile (0..100) of xs by linear
// interpolation between closest ranks; NaN for an empty set. xs is not
// modified.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return percentileSorted(s, p)
}

func percentileSorted(s []float64, p float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	if p <= 0 {
		return s[0]
	}
	if p >= 100 {
		return s[len(s)-1]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	frac := rank - float64(lo)
	return s[lo] + (s[hi]-s[lo])*frac
}

// Summarize computes a Summary of xs (milliseconds); a zero Summary with NaN
// figures for an empty set.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		nan := math.NaN()
		return Summary{Min: nan, P50: nan, P95: nan, P99: nan, Max: nan, Mean: nan}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		N: len(s), Min: s[0], Max: s[len(s)-1], Mean: sum / float64(len(s)),
		P50: percentileSorted(s, 50), P95: percentileSorted(s, 95), P99: percentileSorted(s, 99),
	}
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Samples collects named duration samples (milliseconds) for the JSON file.
type Samples map[string][]float64

// Add records one sample under name.
func (s Samples) Add(name string, d time.Duration) { s[name] = append(s[name], ms(d)) }

// P50 is the median of the samples under name (NaN when there are none).
func (s Samples) P50(name string) float64 { return Percentile(s[name], 50) }

// Sum returns the summary of the samples under name.
func (s Samples) Sum(name string) Summary { return Summarize(s[name]) }

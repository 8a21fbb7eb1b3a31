package metrics

import (
	"math"

	dto "github.com/prometheus/client_model/go"
)

// Family is one metric family in the JSON rendering of GET /metrics.
type Family struct {
	Name    string   `json:"name"`
	Help    string   `json:"help"`
	Type    string   `json:"type"`
	Samples []Sample `json:"samples"`
}

// Sample is one labelled series. Counters and gauges carry Value;
// histograms and summaries carry Count and Sum.
type Sample struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  *float64          `json:"value,omitempty"`
	Count  *uint64           `json:"count,omitempty"`
	Sum    *float64          `json:"sum,omitempty"`
}

// Snapshot gathers every stacyvm_ family (the Go runtime families are left
// to the Prometheus endpoint) as JSON-friendly values.
func (m *Metrics) Snapshot() (any, error) {
	mfs, err := m.reg.Gather()
	out := []Family{}
	for _, mf := range mfs {
		name := mf.GetName()
		if len(name) < len(Namespace)+1 || name[:len(Namespace)+1] != Namespace+"_" {
			continue
		}
		f := Family{Name: name, Help: mf.GetHelp(), Type: lower(mf.GetType().String()), Samples: []Sample{}}
		for _, mt := range mf.GetMetric() {
			s := Sample{}
			if len(mt.GetLabel()) > 0 {
				s.Labels = map[string]string{}
				for _, l := range mt.GetLabel() {
					s.Labels[l.GetName()] = l.GetValue()
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				s.Value = finite(mt.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				s.Value = finite(mt.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				c, sum := mt.GetHistogram().GetSampleCount(), mt.GetHistogram().GetSampleSum()
				s.Count, s.Sum = &c, finite(sum)
			case dto.MetricType_SUMMARY:
				c, sum := mt.GetSummary().GetSampleCount(), mt.GetSummary().GetSampleSum()
				s.Count, s.Sum = &c, finite(sum)
			default:
				s.Value = finite(mt.GetUntyped().GetValue())
			}
			f.Samples = append(f.Samples, s)
		}
		out = append(out, f)
	}
	return out, err
}

// finite keeps NaN and ±Inf (which JSON cannot carry) out of the body.
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

package bench

import (
	"context"
	"fmt"
	"time"
)

// variant is one contender in an interleaved loop; run times what it
// measures itself (setup and cleanup stay outside the figure).
type variant struct {
	name string
	run  func(ctx context.Context) (time.Duration, error)
}

// interleave runs every variant once per round (A B C, B C A, …: the start
// rotates so no contender always goes first) for n rounds or until limit
// passes or ctx ends, recording samples under section.Samples[prefix+name].
// A variant that fails is dropped for the rest of the loop with a note; the
// others carry on. Progress goes to the log about every 10 %.
func (e *Env) interleave(ctx context.Context, sec *Section, prefix string, n int, limit time.Duration, vs []variant) {
	deadline := time.Now().Add(limit)
	dead := make([]bool, len(vs))
	step := max(1, n/10)
	label := prefix
	if label == "" {
		label = sec.Name + ": "
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			sec.note("%s: interrupted after %d of %d rounds", prefix, i, n)
			return
		}
		if time.Now().After(deadline) {
			sec.note("%s: time limit %s reached after %d of %d rounds", prefix, limit, i, n)
			e.logf("%stime limit reached after %d rounds", label, i)
			return
		}
		for j := range vs {
			k := (i + j) % len(vs)
			if dead[k] {
				continue
			}
			v := vs[k]
			if e.Cfg.Settle > 0 {
				time.Sleep(e.Cfg.Settle)
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			d, err := v.run(rctx)
			cancel()
			if err != nil {
				dead[k] = true
				sec.note("%s%s failed in round %d, dropped: %v", prefix, v.name, i+1, err)
				e.logf("%s%s failed: %v", prefix, v.name, err)
				continue
			}
			sec.Samples.Add(prefix+v.name, d)
		}
		if (i+1)%step == 0 || i+1 == n {
			e.logf("%s%d/%d%s", label, i+1, n, medians(sec, prefix, vs))
		}
	}
}

// medians formats the running medians of each variant for progress lines.
func medians(sec *Section, prefix string, vs []variant) string {
	s := ""
	for _, v := range vs {
		if xs := sec.Samples[prefix+v.name]; len(xs) > 0 {
			s += fmt.Sprintf("  %s p50 %.2fms", v.name, Percentile(xs, 50))
		}
	}
	return s
}

// timed times fn.
func timed(fn func() error) (time.Duration, error) {
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}

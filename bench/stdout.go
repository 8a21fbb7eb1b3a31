package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

const stdoutBytes = 10 << 20

// stdoutPayloads are the commands measured: text (what commands print) and
// NUL bytes (the worst case for JSON transport, 6 wire bytes per byte).
var stdoutPayloads = []struct{ name, script string }{
	{"text", fmt.Sprintf("yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c %d", stdoutBytes)},
	{"zeros", fmt.Sprintf("head -c %d /dev/zero", stdoutBytes)},
}

// runStdout measures an exec producing 10 MB of stdout, for each payload:
// ours streamed as NDJSON and as sync JSON vs `docker exec` of the same
// command, with the server's VmRSS/VmHWM before and after.
func runStdout(ctx context.Context, e *Env) *Section {
	sec := newSection("stdout", "Exec with 10 MB of stdout")
	c, cleanup, err := e.spawnContenders(ctx, sec, false)
	defer cleanup()
	if err != nil {
		return sec.fail(err)
	}
	ours, cid := c.ours, c.baseline
	check := func(n int64) error {
		if n != stdoutBytes {
			return fmt.Errorf("got %d stdout bytes, want %d", n, stdoutBytes)
		}
		return nil
	}
	runs := e.pick(5, 1)
	const bound = 64.0
	tgt := fmt.Sprintf("bounded: VmHWM growth < %.0f MB", bound)
	for _, pl := range stdoutPayloads {
		argv := []string{"sh", "-c", pl.script}
		streamName, syncName, dockerName := "ours stream ("+pl.name+")", "ours sync ("+pl.name+")", "docker exec ("+pl.name+")"
		streamV := variant{streamName, func(ctx context.Context) (time.Duration, error) {
			return timed(func() error {
				n, code, err := e.Ours.ExecStream(ctx, ours, argv...)
				if err == nil && code != 0 {
					err = fmt.Errorf("exit %d", code)
				}
				if err != nil {
					return err
				}
				return check(n)
			})
		}}
		syncV := variant{syncName, func(ctx context.Context) (time.Duration, error) {
			var raw []byte
			d, err := timed(func() (err error) { raw, err = e.Ours.ExecRaw(ctx, ours, argv...); return err })
			if err != nil {
				return d, err
			}
			var r ExecResult // decoded after the clock stopped: client cost, not ours
			if err := json.Unmarshal(raw, &r); err != nil {
				return d, err
			}
			return d, check(int64(len(r.Stdout)))
		}}
		dockerV := variant{dockerName, func(ctx context.Context) (time.Duration, error) {
			return timed(func() error {
				n, err := e.Docker.ExecCLI(ctx, cid, argv...)
				if err != nil {
					return err
				}
				return check(n)
			})
		}}
		// Streamed first, then sync, so each one's effect on the server's
		// memory is seen on its own.
		p0 := e.Server.Proc()
		e.interleave(ctx, sec, "", runs, 3*time.Minute, []variant{streamV, dockerV})
		p1 := e.Server.Proc()
		e.interleave(ctx, sec, "", runs, 3*time.Minute, []variant{syncV, dockerV})
		p2 := e.Server.Proc()
		sec.Extra["server_before_"+pl.name], sec.Extra["server_after_stream_"+pl.name], sec.Extra["server_after_sync_"+pl.name] = p0, p1, p2
		d := sec.Samples.P50(dockerName)
		for _, name := range []string{streamName, syncName} {
			o := sec.Samples.P50(name)
			sec.add(name+" p50", "ms", o, d, dockerName)
			sec.add(name+" throughput", "MB/s", mbps(stdoutBytes, o), mbps(stdoutBytes, d), dockerName)
		}
		g1, g2 := kbToMB(p1.HWMKB-p0.HWMKB), kbToMB(p2.HWMKB-p1.HWMKB)
		sec.add("server VmHWM growth, streamed ("+pl.name+")", "MB", g1, math.NaN(), "").target(tgt, g1 < bound)
		sec.add("server VmHWM growth, sync ("+pl.name+", on top of streamed)", "MB", g2, math.NaN(), "").target(tgt, g2 < bound)
		sec.note("%s: server VmRSS %.1f → %.1f (after streamed) → %.1f MB (after sync); VmHWM %.1f → %.1f → %.1f MB", pl.name,
			kbToMB(p0.RSSKB), kbToMB(p1.RSSKB), kbToMB(p2.RSSKB), kbToMB(p0.HWMKB), kbToMB(p1.HWMKB), kbToMB(p2.HWMKB))
		if math.IsNaN(sec.Samples.P50(streamName)) {
			sec.Error = "no streamed exec samples from our server"
		}
	}
	sec.note("text is `yes ... | head -c 10485760`; zeros is /dev/zero, the worst case for JSON transport: each NUL byte is 6 bytes (\\u0000) in NDJSON and sync JSON")
	return sec
}

// mbps is the throughput in MB/s of n bytes moved in msecs milliseconds.
func mbps(n int64, msecs float64) float64 {
	return float64(n) / (1 << 20) / (msecs / 1000)
}

func kbToMB(kb int64) float64 { return float64(kb) / 1024 }

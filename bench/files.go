package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

// runFiles measures writing and reading a 1 KB and a 100 MB file: ours
// (PUT files/raw from a host file, GET files into a host file) vs `docker
// cp` in and out, and the peer, interleaved.
func runFiles(ctx context.Context, e *Env) *Section {
	sec := newSection("files", "File write and read")
	dir, err := os.MkdirTemp("", "svbf")
	if err != nil {
		return sec.fail(err)
	}
	defer os.RemoveAll(dir)
	c, cleanup, err := e.spawnContenders(ctx, sec, true)
	defer cleanup()
	if err != nil {
		return sec.fail(err)
	}
	ours, cid, peerID := c.ours, c.baseline, c.peer
	for _, sz := range []struct {
		label string
		size  int64
		n     int
	}{{"1 KB", 1 << 10, e.pick(20, 5)}, {"100 MB", 100 << 20, e.pick(3, 1)}} {
		src := filepath.Join(dir, "src")
		if err := writeRandom(src, sz.size); err != nil {
			return sec.fail(err)
		}
		const inBox = "/tmp/benchfile"
		apiWrite := func(api *API, id string) func(ctx context.Context) (time.Duration, error) {
			return func(ctx context.Context) (time.Duration, error) {
				return timed(func() error {
					f, err := os.Open(src)
					if err != nil {
						return err
					}
					defer f.Close()
					return api.PutFile(ctx, id, inBox, f, sz.size)
				})
			}
		}
		apiRead := func(api *API, id string) func(ctx context.Context) (time.Duration, error) {
			return func(ctx context.Context) (time.Duration, error) {
				dst := filepath.Join(dir, "dst-api")
				d, err := timed(func() error {
					f, err := os.Create(dst)
					if err != nil {
						return err
					}
					n, err := api.GetFile(ctx, id, inBox, f)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
					if err == nil && n != sz.size {
						err = fmt.Errorf("read %d bytes, want %d", n, sz.size)
					}
					return err
				})
				os.Remove(dst)
				return d, err
			}
		}
		write := []variant{
			{"ours", apiWrite(e.Ours, ours)},
			{"docker cp", func(ctx context.Context) (time.Duration, error) {
				return timed(func() error { return e.Docker.CopyIn(ctx, src, cid, inBox) })
			}},
		}
		read := []variant{
			{"ours", apiRead(e.Ours, ours)},
			{"docker cp", func(ctx context.Context) (time.Duration, error) {
				dst := filepath.Join(dir, "dst-cp")
				d, err := timed(func() error { return e.Docker.CopyOut(ctx, cid, inBox, dst) })
				if err == nil {
					if st, serr := os.Stat(dst); serr != nil || st.Size() != sz.size {
						err = fmt.Errorf("docker cp out: wrong size (%v)", serr)
					}
				}
				os.Remove(dst)
				return d, err
			}},
		}
		if peerID != "" {
			write = append(write, variant{"peer", apiWrite(e.Peer, peerID)})
			read = append(read, variant{"peer", apiRead(e.Peer, peerID)})
		}
		wp, rp := "write "+sz.label+": ", "read "+sz.label+": "
		e.interleave(ctx, sec, wp, sz.n, 5*time.Minute, write)
		e.interleave(ctx, sec, rp, sz.n, 5*time.Minute, read)
		for _, op := range []string{wp, rp} {
			o, d, p := sec.Samples.P50(op+"ours"), sec.Samples.P50(op+"docker cp"), sec.Samples.P50(op+"peer")
			if sz.size < 1<<20 {
				sec.add(op[:len(op)-2]+" p50", "ms", o, d, "docker cp").peer(p)
				continue
			}
			ot, dt := mbps(sz.size, o), mbps(sz.size, d)
			sec.add(op[:len(op)-2]+" throughput", "MB/s", ot, dt, "docker cp").peer(mbps(sz.size, p)).
				target("≥ 2 × docker cp", ot >= 2*dt)
			sec.add(op[:len(op)-2]+" p50", "ms", o, d, "docker cp").peer(p)
		}
	}
	if math.IsNaN(sec.Samples.P50("write 1 KB: ours")) {
		sec.Error = "no file samples from our server"
	}
	return sec
}

// writeRandom writes size incompressible bytes to path.
func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		r.Read(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

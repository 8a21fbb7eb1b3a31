package agent

import (
	"bytes"
	"testing"
)

// readAll collects everything the ring holds from off.
func readAll(r *outputRing, off int64) (string, int64) {
	var b bytes.Buffer
	chunks, from, _, _ := r.read(off, 1<<30)
	for _, c := range chunks {
		b.Write(c.data)
	}
	return b.String(), from
}

func TestOutputRing_BoundedKeepsNewestContiguous(t *testing.T) {
	r := newOutputRing(4096)
	var all bytes.Buffer
	for i := 0; i < 5000; i++ {
		typ := FrameStdout
		if i%3 == 0 {
			typ = FrameStderr
		}
		p := []byte{byte('a' + i%26)}
		r.write(typ, p)
		all.Write(p)
	}
	if r.used > r.limit {
		t.Fatalf("used %d > limit %d", r.used, r.limit)
	}
	start, end := r.bounds()
	if end != int64(all.Len()) || start <= 0 {
		t.Fatalf("bounds [%d,%d), want a dropped head and end %d", start, end, all.Len())
	}
	got, from := readAll(r, 0)
	if from != start || got != all.String()[start:] {
		t.Errorf("read from 0 started at %d with %d bytes, want %d and the kept tail", from, len(got), start)
	}
	mid := start + (end-start)/2
	if got, from := readAll(r, mid); from != mid || got != all.String()[mid:] {
		t.Errorf("read from %d: %d bytes from %d", mid, len(got), from)
	}
}

func TestOutputRing_OversizedWriteKeepsTail(t *testing.T) {
	r := newOutputRing(minOutputLimit)
	big := bytes.Repeat([]byte("0123456789"), 1000) // 10000 bytes
	r.write(FrameStdout, []byte("head"))
	r.write(FrameStdout, big)
	start, end := r.bounds()
	got, _ := readAll(r, 0)
	if end != 10004 || int64(len(got)) != end-start || !bytes.HasSuffix(big, []byte(got)) || r.used > r.limit {
		t.Errorf("bounds [%d,%d) got %d bytes, used %d", start, end, len(got), r.used)
	}
}

func TestOutputRing_ReadWakesOnWriteAndClose(t *testing.T) {
	r := newOutputRing(minOutputLimit)
	_, _, closed, wake := r.read(0, 10)
	if closed {
		t.Fatal("new ring is closed")
	}
	r.write(FrameStdout, []byte("x"))
	<-wake
	_, _, _, wake = r.read(1, 10)
	r.close()
	<-wake
	if _, _, closed, _ := r.read(1, 10); !closed {
		t.Error("ring not closed after close")
	}
}

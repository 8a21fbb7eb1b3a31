package agent

import "sync"

// outputRing keeps the most recent output of a background process, bounded
// by limit bytes (payload plus a fixed charge per chunk, so a stream of
// one-byte writes cannot grow it past the bound either). Offsets count
// payload bytes since the process started; readers ask from any offset and
// get what is still kept.
type outputRing struct {
	mu     sync.Mutex
	limit  int
	used   int
	chunks []ringChunk // oldest first, contiguous
	start  int64       // offset of the oldest kept byte
	end    int64       // offset after the newest byte
	closed bool        // the process's outputs have ended
	wake   chan struct{}
}

type ringChunk struct {
	off  int64
	typ  byte
	data []byte
}

// chunkCharge is what each chunk costs against the limit besides its bytes.
const chunkCharge = 64

// coalesceBelow is the size up to which a write extends the previous chunk
// of the same stream instead of starting a new one.
const coalesceBelow = 16 << 10

func newOutputRing(limit int) *outputRing {
	return &outputRing{limit: limit, wake: make(chan struct{})}
}

// write appends p (copied) and wakes followers.
func (r *outputRing) write(typ byte, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(p) > r.limit-chunkCharge {
		// Only the tail of a write larger than the whole ring can be kept.
		skip := len(p) - (r.limit - chunkCharge)
		r.end += int64(skip)
		p = p[skip:]
		r.chunks, r.used, r.start = nil, 0, r.end
	}
	if n := len(r.chunks); n > 0 && r.chunks[n-1].typ == typ && len(r.chunks[n-1].data) < coalesceBelow {
		r.chunks[n-1].data = append(r.chunks[n-1].data, p...)
		r.used += len(p)
	} else {
		r.chunks = append(r.chunks, ringChunk{off: r.end, typ: typ, data: append([]byte(nil), p...)})
		r.used += len(p) + chunkCharge
	}
	r.end += int64(len(p))
	for r.used > r.limit && len(r.chunks) > 0 {
		c := &r.chunks[0]
		over := r.used - r.limit
		if over < len(c.data) {
			// Trim the oldest chunk's head; copy so its old array is freed.
			c.data = append([]byte(nil), c.data[over:]...)
			c.off += int64(over)
			r.used -= over
		} else {
			r.used -= len(c.data) + chunkCharge
			r.chunks[0] = ringChunk{}
			r.chunks = r.chunks[1:]
		}
	}
	if len(r.chunks) > 0 {
		r.start = r.chunks[0].off
	} else {
		r.start = r.end
	}
	close(r.wake)
	r.wake = make(chan struct{})
}

// close marks the end of output and wakes followers.
func (r *outputRing) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		close(r.wake)
		r.wake = make(chan struct{})
	}
}

// bounds returns the kept range [start, end).
func (r *outputRing) bounds() (start, end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start, r.end
}

// read copies up to max bytes from offset off. from is where the returned
// chunks begin: off, or the oldest kept byte when off was dropped already.
// When nothing is available, wake is closed on the next write or close;
// closed reports that no more output will come.
func (r *outputRing) read(off int64, max int) (chunks []ringChunk, from int64, closed bool, wake <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from = max64(off, r.start)
	n := 0
	for _, c := range r.chunks {
		cend := c.off + int64(len(c.data))
		if cend <= from {
			continue
		}
		i := int(max64(from, c.off) - c.off)
		take := min(len(c.data)-i, max-n)
		if take <= 0 {
			break
		}
		chunks = append(chunks, ringChunk{off: c.off + int64(i), typ: c.typ, data: append([]byte(nil), c.data[i:i+take]...)})
		n += take
	}
	return chunks, from, r.closed, r.wake
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

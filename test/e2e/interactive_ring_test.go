package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInteractive_OutputRingKeepsNewest: a background process with the
// smallest ring (output_limit 4 KiB) writes 22 kB. Reading from offset 0
// gives the newest bytes kept, starting at output_start (X-Output-Offset
// raw, the first line's offset in NDJSON). A follower that drops while the
// process waits reattaches from its own offset and gets the rest exactly.
func TestInteractive_OutputRingKeepsNewest(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "ttl": "10m"})
	base := "/sandboxes/" + sb.ID + "/processes"
	const limit = 4096
	// Fixed-width lines (11 bytes), so any offset names a known byte.
	lines := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "line-%05d\n", i)
		}
		return b.String()
	}
	first, second := lines(0, 2000), lines(2000, 2200) // 22000 > limit; 2200 < limit
	all := first + second
	var p processJSON
	code, data := s.call("POST", base, map[string]any{
		"command": `awk 'BEGIN{for(i=0;i<2000;i++) printf "line-%05d\n", i}'; read go; ` +
			`awk 'BEGIN{for(i=2000;i<2200;i++) printf "line-%05d\n", i}'; exit 7`,
		"stdin": true, "output_limit": limit}, &p)
	if code != 201 {
		t.Fatalf("start: %d %s", code, data)
	}
	proc := base + "/" + p.ID
	waitEnd := func(end int64) processJSON {
		t.Helper()
		var st processJSON
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if s.call("GET", proc, nil, &st); st.OutputEnd >= end && (end < int64(len(all)) || !st.Running) {
				return st
			}
		}
		t.Fatalf("process never reached output_end %d: %+v", end, st)
		return st
	}

	// The first batch overflowed the ring: only the newest bytes are kept.
	st := waitEnd(int64(len(first)))
	if !st.Running || st.OutputEnd != int64(len(first)) || st.OutputStart <= 0 ||
		st.OutputEnd-st.OutputStart > limit || st.OutputEnd-st.OutputStart < limit/2 {
		t.Fatalf("after %d bytes into a %d-byte ring: %+v, want running, output_end %d and at most %d (at least %d) bytes kept",
			len(first), limit, st, len(first), limit, limit/2)
	}
	kept := first[st.OutputStart:]
	t.Logf("after %d bytes into a %d-byte ring: output_start %d, output_end %d (%d bytes kept)",
		len(first), limit, st.OutputStart, st.OutputEnd, len(kept))

	// Raw from offset 0: the kept bytes, their first offset in the header.
	req, _ := http.NewRequest("GET", s.url+proc+"/output?offset=0", nil)
	req.Header.Set("Accept", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Output-Offset") != strconv.FormatInt(st.OutputStart, 10) || string(raw) != kept {
		t.Errorf("raw from 0: %d, X-Output-Offset %q, %d bytes starting %.11q; want 200, %d, %d bytes starting %.11q",
			resp.StatusCode, resp.Header.Get("X-Output-Offset"), len(raw), raw, st.OutputStart, len(kept), kept)
	}

	// NDJSON from offset 0: the first line's offset shows where it starts.
	var firstOff int64 = -1
	got, exit := readLines(t, context.Background(), s.url+proc+"/output?offset=0", func(l outLine) bool {
		if firstOff < 0 {
			firstOff = l.Offset
		}
		return false
	})
	if firstOff != st.OutputStart || got != kept || exit != nil {
		t.Errorf("NDJSON from 0: first offset %d, %d bytes, exit %v; want offset %d, %d bytes, no exit yet",
			firstOff, len(got), exit, st.OutputStart, len(kept))
	}

	// A follower from 0 reads what is kept, then drops while the process
	// waits; it comes back from its own offset and gets exactly the rest.
	ctx, cancel := context.WithCancel(context.Background())
	var resume int64
	got, _ = readLines(t, ctx, s.url+proc+"/output?offset=0&follow=true", func(l outLine) bool {
		resume = l.Offset + int64(len(l.Data))
		return resume >= int64(len(first))
	})
	cancel()
	if resume != int64(len(first)) || got != kept {
		t.Fatalf("follower: %d bytes up to offset %d, want %d bytes up to %d", len(got), resume, len(kept), len(first))
	}
	if code, data := s.call("POST", proc+"/stdin", map[string]any{"data": "go\n"}, nil); code != 200 {
		t.Fatalf("stdin: %d %s", code, data)
	}
	rest, exit := readLines(t, context.Background(), fmt.Sprintf("%s%s/output?offset=%d&follow=true", s.url, proc, resume), nil)
	if rest != second || exit == nil || *exit != 7 {
		t.Errorf("reattached from %d: %d bytes, exit %v; want %d bytes (%q...), exit 7", resume, len(rest), exit, len(second), second[:11])
	}
	// And from 0 once it has exited: the newest bytes across both batches.
	end := waitEnd(int64(len(all)))
	got, exit = readLines(t, context.Background(), s.url+proc+"/output?offset=0", nil)
	if end.OutputEnd != int64(len(all)) || end.OutputEnd-end.OutputStart > limit || got != all[end.OutputStart:] || exit == nil || *exit != 7 {
		t.Errorf("from 0 after exit: %d bytes (state %+v), exit %v; want the last %d bytes of %d and exit 7",
			len(got), end, exit, end.OutputEnd-end.OutputStart, len(all))
	}
}

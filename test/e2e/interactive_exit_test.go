package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// TestInteractive_PipedInputExitAlwaysArrives: a shell fed its script and
// stdin EOF that exits at once must always deliver its exit status, however
// its exit races the input still in flight (stdin bytes, the EOF message).
// About once in 50 runs the server used to drop the agent connection when
// the EOF could no longer be written, losing the exit frame behind it.
func TestInteractive_PipedInputExitAlwaysArrives(t *testing.T) {
	s := startServer(t, "")
	sb := s.spawn(map[string]any{"image": "stacyvm/busybox", "ttl": "10m"})
	c := apiclient.New(strings.TrimSuffix(s.url, "/api/v1"), "")
	const runs = 300
	script := []byte("echo hi from shell; echo oops >&2; exit 3\n")
	failed := 0
	for i := range runs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		x, err := c.OpenExecWS(ctx, sb.ID, apiclient.ExecWSRequest{Command: "/bin/sh", Mode: apiclient.ModeArgv})
		if err != nil {
			cancel()
			t.Fatalf("run %d: OpenExecWS: %v", i, err)
		}
		var out, errOut bytes.Buffer
		code, err := x.Run(ctx, bytes.NewReader(script), &out, &errOut)
		x.Close()
		cancel()
		if err != nil || code != 3 || out.String() != "hi from shell\n" || errOut.String() != "oops\n" {
			failed++
			t.Errorf("run %d: exit %d, err %v, stdout %q, stderr %q; want 3, hi, oops", i, code, err, out.String(), errOut.String())
			if failed >= 5 {
				t.Fatalf("%d of %d runs failed so far", failed, i+1)
			}
		}
	}
}

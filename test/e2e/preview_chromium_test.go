package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// loadInChromium opens u in a fresh headless Chromium and returns the text
// of the page's elements ids once none of them says "pending".
func loadInChromium(t *testing.T, chrome, u string, ids ...string) map[string]string {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	quoted, _ := json.Marshal(ids)
	done := fmt.Sprintf(`%s.every(id => document.getElementById(id) && document.getElementById(id).textContent !== 'pending')`, quoted)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](done, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("%s: page never finished: %v", u, err)
	}
	out := map[string]string{}
	for _, id := range ids {
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = text
	}
	return out
}

// TestPreview_LatencyOverhead: median of small GETs through the preview
// proxy (path routing, keep-alive) against the same GETs sent straight to
// the container's bridge IP, interleaved in one run.
func TestPreview_LatencyOverhead(t *testing.T) {
	s := keyedServer(t)
	id := startApp(t, s, "bridge")
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=stacyvm.sandbox_id="+id).Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		t.Fatalf("find the container of %s: %v", id, err)
	}
	ipOut, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", strings.TrimSpace(string(out))).Output()
	ip := strings.Fields(string(ipOut))
	if err != nil || len(ip) == 0 {
		t.Fatalf("container IP: %v %q", err, ipOut)
	}
	direct := fmt.Sprintf("http://%s/small", net.JoinHostPort(ip[0], "8000"))
	proxied := fmt.Sprintf("%s/preview/%s/%d/small", s.root(), id, appPort)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(u string, key bool) time.Duration {
		req, _ := http.NewRequest("GET", u, nil)
		if key {
			req.Header.Set("X-API-Key", previewKey)
		}
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		buf := make([]byte, 16)
		n, _ := resp.Body.Read(buf)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 || string(buf[:n]) != "ok" {
			t.Fatalf("GET %s: %d %q", u, resp.StatusCode, buf[:n])
		}
		return d
	}
	for range 10 { // warm both paths (connection pools, page cache)
		get(direct, false)
		get(proxied, true)
	}
	const n = 200
	var d, p []time.Duration
	for range n {
		d = append(d, get(direct, false))
		p = append(p, get(proxied, true))
	}
	md, mp := median(d), median(p)
	t.Logf("preview latency, median of %d interleaved small GETs: direct to container IP %v, through the preview proxy %v (overhead %v)",
		n, md.Round(time.Microsecond), mp.Round(time.Microsecond), (mp - md).Round(time.Microsecond))
	t.Logf("preview latency percentiles: direct p50=%v p90=%v p99=%v; proxied p50=%v p90=%v p99=%v",
		pct(d, 50), pct(d, 90), pct(d, 99), pct(p, 50), pct(p, 90), pct(p, 99))
	if mp > md+50*time.Millisecond {
		t.Errorf("proxy median %v is more than 50 ms over direct %v", mp, md)
	}
}

func median(ds []time.Duration) time.Duration { return pct(ds, 50) }

// pct is the p-th percentile of ds (nearest rank), to the microsecond.
func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)*p/100, len(s)-1)].Round(time.Microsecond)
}

package sdk

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserPage loads the built TypeScript SDK as a plain ES module in the
// page (no bundler) and drives the live server with it: spawn, exec, a
// streamed exec, a file write and read, destroy. The page's origin is the
// server's allowed CORS origin, so every call is a real cross-origin fetch
// with its preflight, as from a web app.
const browserPage = `<!doctype html>
<meta charset="utf-8">
<title>stacyvm sdk in a browser</title>
<pre id="result">pending</pre>
<script type="module">
import { Client, NotFound } from "./dist/index.js";
const out = document.getElementById("result");
try {
  const client = new Client({ baseUrl: API_ROOT, timeout: 30000 });
  const sb = await client.spawn({ image: "stacyvm/busybox", ttl: "2m", metadata: { "sdk-test": "browser" } });
  const r = await sb.exec("echo hi-from-$((40+2))");
  let streamed = "";
  for await (const ch of sb.execStream("for i in 1 2 3; do echo s$i; done")) streamed += ch.data;
  await sb.writeFile("/tmp/browser.txt", "browser-bytes");
  const f = await sb.readFile("/tmp/browser.txt");
  await sb.destroy();
  let missing = "no";
  try { await client.get(sb.id); } catch (e) { missing = e instanceof NotFound ? "NotFound" : String(e); }
  out.textContent = ["ok", r.exit_code, r.stdout.trim(), streamed.trim().split("\n").join(","), f, missing].join("|");
} catch (e) {
  out.textContent = "error|" + (e && e.stack ? e.stack : e);
}
</script>
`

// TestTypeScriptSDK_Browser runs the TypeScript SDK in a real headless
// Chromium (Debian's package) against the live server: the "browsers"
// half of "Node 18+ and browsers".
func TestTypeScriptSDK_Browser(t *testing.T) {
	needLive(t)
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing and CI=true (scripts/ci-prepare.sh installs it)")
		}
		t.Skip("chromium not installed")
	}
	buildTS(t)
	before := sandboxCount(t)
	dist, err := filepath.Abs(filepath.Join(tsDir, "dist"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dist/", http.StripPrefix("/dist/", http.FileServer(http.Dir(dist))))
	page := strings.Replace(browserPage, "API_ROOT", `"`+live.url+`"`, 1)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(live.page)
	defer srv.Close()

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
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	u := "http://" + live.page.Addr().String() + "/"
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('result') && document.getElementById('result').textContent !== 'pending'`, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the page never finished: %v", err)
	}
	got, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("result")))
	if err != nil {
		t.Fatal(err)
	}
	if want := "ok|0|hi-from-42|s1,s2,s3|browser-bytes|NotFound"; got != want {
		t.Fatalf("in Chromium: %q\nwant %q", got, want)
	}
	checkNoLeak(t, before)
}

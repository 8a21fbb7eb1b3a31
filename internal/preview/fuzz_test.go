package preview

import (
	"strings"
	"testing"
)

// FuzzParsePath: no input panics, and an accepted rest never climbs.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/preview/sb-ab/80/x", "/preview/sb-ab/80/../..", "/preview//80/", "/preview/sb-1/65536/a", "/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		tg, rest, ok, _, err := ParsePath(p)
		if !ok || err != nil {
			return
		}
		if !strings.HasPrefix(rest, "/") || tg.Port < 1 || tg.Port > 65535 || !validID(tg.Sandbox) {
			t.Fatalf("ParsePath(%q) accepted %+v %q", p, tg, rest)
		}
		for _, seg := range strings.Split(rest, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("ParsePath(%q) let %q through", p, rest)
			}
		}
	})
}

// FuzzParseHost: no input panics; accepted targets are well formed.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"80-sb-ab.localhost:1", "localhost", "x-sb-.localhost", "0-sb-1.localhost."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tg, ok, err := ParseHost(h, "localhost")
		if ok && err == nil && (tg.Port < 1 || tg.Port > 65535 || !validID(tg.Sandbox)) {
			t.Fatalf("ParseHost(%q) accepted %+v", h, tg)
		}
	})
}

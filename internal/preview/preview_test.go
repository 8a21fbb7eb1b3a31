package preview

import (
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestToken_MintVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	s, err := NewSigner([]byte(strings.Repeat("k", 32)), clock)
	if err != nil {
		t.Fatal(err)
	}
	c := Claims{Sandbox: "sb-abc", Port: 8080, Tenant: "t1", Expires: now.Add(time.Hour)}
	tok, err := s.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(tok)
	if err != nil || got.Sandbox != "sb-abc" || got.Port != 8080 || got.Tenant != "t1" || !got.Expires.Equal(c.Expires) {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	other, _ := NewSigner([]byte(strings.Repeat("x", 32)), clock)
	forged, _ := other.Mint(c)
	body, sig, _ := strings.Cut(tok[3:], ".")
	for name, bad := range map[string]string{
		"other key":       forged,
		"flipped mac":     tok[:len(tok)-2] + "AA",
		"swapped payload": "v1." + body[:len(body)-1] + "A." + sig,
		"empty":           "",
		"garbage":         "v1.%%%.%%%",
		"huge":            "v1." + strings.Repeat("a", 5000),
	} {
		if _, err := s.Verify(bad); !errs.Is(err, errs.Unauthorized) {
			t.Errorf("%s: %v, want Unauthorized", name, err)
		}
	}
	now = now.Add(2 * time.Hour)
	if _, err := s.Verify(tok); !errs.Is(err, errs.Unauthorized) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v, want Unauthorized 'expired'", err)
	}
	if _, err := s.Mint(c); !errs.Is(err, errs.Invalid) {
		t.Errorf("minting an already expired token: %v, want Invalid", err)
	}
	if _, err := NewSigner([]byte("short"), nil); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestParseHost(t *testing.T) {
	tests := []struct {
		host     string
		ok       bool
		errClass errs.Class
		want     Target
	}{
		{"8080-sb-12ab.localhost:7423", true, -1, Target{"sb-12ab", 8080}},
		{"8080-SB-12AB.LOCALHOST", true, -1, Target{"sb-12ab", 8080}},
		{"localhost:7423", false, -1, Target{}},
		{"127.0.0.1:7423", false, -1, Target{}},
		{"api.localhost", false, -1, Target{}},
		{"a.8080-sb-1.localhost", false, -1, Target{}},
		{"70000-sb-12ab.localhost", true, errs.Invalid, Target{}},
		{"0-sb-12ab.localhost", true, errs.Invalid, Target{}},
		{"abc-sb-12ab.localhost", true, errs.Invalid, Target{}},
		{"80-sb-zz.localhost", true, errs.NotFound, Target{}},
	}
	for _, tt := range tests {
		got, ok, err := ParseHost(tt.host, "localhost")
		if ok != tt.ok || (tt.errClass < 0) != (err == nil) || (err != nil && !errs.Is(err, tt.errClass)) || got != tt.want {
			t.Errorf("ParseHost(%q) = %+v %v %v; want %+v ok=%v class %v", tt.host, got, ok, err, tt.want, tt.ok, tt.errClass)
		}
	}
}

func TestParsePath(t *testing.T) {
	tests := []struct {
		path            string
		ok, slash, fail bool
		rest            string
	}{
		{"/preview/sb-ab/3000/x/y?", true, false, false, "/x/y?"},
		{"/preview/sb-ab/3000/", true, false, false, "/"},
		{"/preview/sb-ab/3000", true, true, false, "/"},
		{"/api/v1/sandboxes", false, false, false, ""},
		{"/preview/sb-ab/3000/../../sb-cd/80/", true, false, true, ""},
		{"/preview/sb-ab/3000/a/./b", true, false, true, ""},
		{"/preview/sb-ab/0/", true, false, true, ""},
		{"/preview/sb-ab/x/", true, false, true, ""},
		{"/preview/", true, false, true, ""},
		{"/preview/nope/80/", true, false, true, ""},
	}
	for _, tt := range tests {
		_, rest, ok, slash, err := ParsePath(tt.path)
		if ok != tt.ok || slash != tt.slash || (err != nil) != tt.fail || (!tt.fail && rest != tt.rest) {
			t.Errorf("ParsePath(%q) = rest %q ok=%v slash=%v err=%v", tt.path, rest, ok, slash, err)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	p := t.TempDir() + "/k"
	a, err := LoadOrCreateSecret(p)
	if err != nil || len(a) < MinSecretLen {
		t.Fatalf("create: %q %v", a, err)
	}
	b, err := LoadOrCreateSecret(p)
	if err != nil || string(a) != string(b) {
		t.Fatalf("reload gave another key: %v", err)
	}
}

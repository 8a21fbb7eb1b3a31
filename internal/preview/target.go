package preview

import (
	"net"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Target is one sandbox port to preview.
type Target struct {
	Sandbox string
	Port    int
}

// PathPrefix starts every path-routed preview: /preview/{id}/{port}/...
const PathPrefix = "/preview/"

// HostName returns the host part of a Host header value, lower-cased,
// without a port or a trailing dot.
func HostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// ParseHost recognises "{port}-{id}.{domain}" (domain without a port). ok
// is false for hosts that are not preview hosts at all (the API's own
// host); a preview-shaped host with a bad port or id is an Invalid error.
func ParseHost(host, domain string) (t Target, ok bool, err error) {
	name := HostName(host)
	domain = HostName(domain)
	if domain == "" || !strings.HasSuffix(name, "."+domain) {
		return t, false, nil
	}
	label := strings.TrimSuffix(name, "."+domain)
	// Only "<port>-sb-<hex>" labels are previews; other names under the
	// domain (the API's own host, say) are left alone.
	i := strings.Index(label, "-sb-")
	if i <= 0 || strings.Contains(label, ".") {
		return t, false, nil
	}
	port, err := agent.ParsePort(label[:i])
	if err != nil {
		return t, true, err
	}
	id := label[i+1:]
	if !validID(id) {
		return t, true, errs.New(errs.NotFound, "sandbox %s not found", id)
	}
	return Target{Sandbox: id, Port: port}, true, nil
}

// ParsePath splits a path-routed preview "/preview/{id}/{port}/rest" into
// its target and the upstream path "/rest". ok is false when p does not
// start with PathPrefix. A rest holding "." or ".." segments (after
// decoding, so %2e%2e too) is Invalid: nothing may climb out of the prefix.
// needSlash reports "/preview/{id}/{port}" without its trailing slash.
func ParsePath(p string) (t Target, rest string, ok, needSlash bool, err error) {
	if !strings.HasPrefix(p, PathPrefix) {
		return t, "", false, false, nil
	}
	parts := strings.SplitN(p[len(PathPrefix):], "/", 3)
	if len(parts) < 2 || parts[0] == "" {
		return t, "", true, false, errs.New(errs.Invalid, "preview paths are /preview/{sandbox id}/{port}/...")
	}
	port, err := agent.ParsePort(parts[1])
	if err != nil {
		return t, "", true, false, err
	}
	if !validID(parts[0]) {
		return t, "", true, false, errs.New(errs.NotFound, "sandbox %s not found", printable(parts[0]))
	}
	t = Target{Sandbox: parts[0], Port: port}
	if len(parts) == 2 {
		return t, "/", true, true, nil
	}
	rest = "/" + parts[2]
	for _, seg := range strings.Split(parts[2], "/") {
		if seg == ".." || seg == "." {
			return t, "", true, false, errs.New(errs.Invalid, "preview path escapes its /preview/%s/%d/ prefix", t.Sandbox, t.Port)
		}
	}
	return t, rest, true, false, nil
}

// validID accepts sandbox ids: "sb-" and 1-61 hex digits.
func validID(id string) bool {
	if !strings.HasPrefix(id, "sb-") || len(id) < 4 || len(id) > 64 {
		return false
	}
	for _, c := range id[3:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func printable(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

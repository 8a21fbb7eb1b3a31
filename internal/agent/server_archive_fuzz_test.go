package agent_test

import (
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// FuzzArchiveName: an accepted entry name is relative, clean and never
// climbs out of the extraction directory.
func FuzzArchiveName(f *testing.F) {
	for _, s := range []string{"a/b", "./a", "../x", "/etc/passwd", "a/../../b", "a//b/./c", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := agent.ArchiveName(name)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") || strings.Contains(got, "\x00") {
			t.Fatalf("ArchiveName(%q) = %q", name, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if got != "" && (seg == "" || seg == "." || seg == "..") {
				t.Fatalf("ArchiveName(%q) = %q", name, got)
			}
		}
	})
}

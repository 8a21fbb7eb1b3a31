package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func split(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/z/b", true},
		{"a/**/b", "a/x/y/z/c", false},
		{"**", "", true},
		{"**", "a/b/c", true},
		{"**/*.go", "main.go", true},
		{"**/*.go", "x/y/main.go", true},
		{"**/*.go", "x/y/main.py", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/x/c", false},
		{"a/**", "a", true},
		{"a/**/**/b", "a/b", true},
		{"a**b", "axxb", true},
		{"a**b", "a/b", false},
		{"a/[bc]/d", "a/c/d", true},
		{"a/?", "a/bc", false},
	}
	for _, tt := range tests {
		if got := globMatch(split(tt.pattern), split(tt.name)); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// naiveMatch is the definition of "**" written as plain recursion.
func naiveMatch(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		return naiveMatch(pat[1:], name) || (len(name) > 0 && naiveMatch(pat, name[1:]))
	}
	if len(name) == 0 {
		return false
	}
	ok, _ := path.Match(pat[0], name[0])
	return ok && naiveMatch(pat[1:], name[1:])
}

func FuzzGlobMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"a/**/b", "a/x/b"}, {"**", ""}, {"**/**/*.go", "x/y.go"}, {"a/*/c", "a/b/c"},
		{"[a-", "a"}, {"a\\*b", "a*b"}, {"**/x/**", "x"}, {"?/?", "a/b"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		// strings.Split, not split: path.Match sees "" as one empty segment.
		pat, nm := strings.Split(pattern, "/"), strings.Split(name, "/")
		if len(pat) > 10 || len(nm) > 10 {
			t.Skip()
		}
		for _, seg := range pat {
			if _, err := path.Match(seg, ""); err != nil {
				t.Skip()
			}
		}
		got := globMatch(pat, nm)
		if want := naiveMatch(pat, nm); got != want {
			t.Fatalf("globMatch(%q, %q) = %v, naive %v", pattern, name, got, want)
		}
		if !slices.Contains(pat, "**") {
			// Without "**" the matcher is exactly path.Match on the whole name.
			if want, _ := path.Match(pattern, name); got != want {
				t.Fatalf("globMatch(%q, %q) = %v, path.Match %v", pattern, name, got, want)
			}
		}
	})
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "", "a", "/a/../../b", "/../..", "//x//y/", "/a\x00b", "./a", "/a/./b/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := cleanPath(in)
		if err != nil {
			if errs.ClassOf(err) != errs.Invalid {
				t.Fatalf("cleanPath(%q) error class %v, want Invalid", in, errs.ClassOf(err))
			}
			if strings.HasPrefix(in, "/") && !strings.ContainsRune(in, 0) {
				t.Fatalf("cleanPath(%q) rejected an absolute path: %v", in, err)
			}
			return
		}
		if !strings.HasPrefix(got, "/") || path.Clean(got) != got || strings.ContainsRune(got, 0) {
			t.Fatalf("cleanPath(%q) = %q, not clean and absolute", in, got)
		}
		if slices.Contains(strings.Split(got, "/"), "..") {
			t.Fatalf("cleanPath(%q) = %q keeps ..", in, got)
		}
	})
}

// TestGlob_WalkAgreesWithMatcher checks the pruned directory walk against
// globMatch applied to every path of a symlink-free tree.
func TestGlob_WalkAgreesWithMatcher(t *testing.T) {
	root := t.TempDir()
	files := []string{"a/b/c.go", "a/b/d.txt", "a/x.go", "b/a/b/c.go", "top.go", "a/b/e/f/g.go", "empty/.keep"}
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	filepath.WalkDir(root, func(p string, _ os.DirEntry, _ error) error {
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			all = append(all, rel)
		}
		return nil
	})
	s, err := NewServer(ServerOptions{Root: root, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	patterns := []string{"/**", "/**/*.go", "/a/**", "/a/**/*.go", "/**/b/**", "/*/b/*", "/a/b/c.go", "/**/**/c.go", "/?/*", "/nope/**", "/top.go/**", "/**/e/**/g.go"}
	for _, pat := range patterns {
		got, err := s.glob(context.Background(), pat)
		if err != nil {
			t.Fatalf("glob(%s): %v", pat, err)
		}
		segs, _ := globSegments(pat)
		want := []string{}
		for _, rel := range all {
			if globMatch(segs, strings.Split(rel, "/")) {
				want = append(want, "/"+rel)
			}
		}
		if globMatch(segs, nil) { // "/" itself has zero segments
			want = append([]string{"/"}, want...)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("glob(%s) = %v, want %v", pat, got, want)
		}
	}
}

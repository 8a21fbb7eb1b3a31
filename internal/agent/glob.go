package agent

import (
	"context"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// maxGlobMatches bounds a glob's answer (and so its memory).
const maxGlobMatches = 100_000

// globSegments validates an absolute glob pattern and splits it into path
// segments ("/" is zero segments). Every segment must be a valid path.Match
// pattern; "**" alone in a segment matches zero or more directories.
func globSegments(pattern string) ([]string, error) {
	p, err := cleanPath(pattern)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, nil
	}
	segs := strings.Split(p[1:], "/")
	for _, seg := range segs {
		if _, err := path.Match(seg, ""); err != nil {
			return nil, errs.New(errs.Invalid, "bad glob pattern %q: %v", pattern, err)
		}
	}
	return segs, nil
}

// globMatch reports whether the slash-separated segments of name match the
// pattern segments, "**" matching any number (including zero) of segments.
// It is a dynamic program over (pattern, name) positions, so repeated "**"
// cannot blow up exponentially.
func globMatch(pat, name []string) bool {
	// cur[j]: pat[i:] matches name[j:]; computed from the last pattern
	// segment backwards.
	cur := make([]bool, len(name)+1)
	next := make([]bool, len(name)+1)
	cur[len(name)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		next, cur = cur, next
		for j := len(name); j >= 0; j-- {
			switch {
			case pat[i] == "**":
				cur[j] = next[j] || (j < len(name) && cur[j+1])
			case j == len(name):
				cur[j] = false
			default:
				ok, _ := path.Match(pat[i], name[j])
				cur[j] = ok && next[j+1]
			}
		}
	}
	return cur[0]
}

// hasMeta reports whether a segment needs matching rather than a lookup.
func hasMeta(seg string) bool { return strings.ContainsAny(seg, `*?[\`) }

// globber walks the sandbox file system for one pattern.
type globber struct {
	ctx     context.Context
	fs      fsys
	segs    []string
	found   map[string]struct{}
	visited map[globState]struct{}
}

// globState is one (directory, pattern position) pair; visiting each once
// keeps patterns with several "**" linear in the size of the tree.
type globState struct {
	dir string
	i   int
}

// glob returns the sandbox paths matching pattern, sorted, never nil.
func (s *Server) glob(ctx context.Context, pattern string) ([]string, error) {
	segs, err := globSegments(pattern)
	if err != nil {
		return nil, err
	}
	g := &globber{ctx: ctx, fs: s.fs, segs: segs, found: map[string]struct{}{}, visited: map[globState]struct{}{}}
	if err := g.walk("/", 0); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(g.found))
	for p := range g.found {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}

func (g *globber) add(p string) error {
	g.found[p] = struct{}{}
	if len(g.found) > maxGlobMatches {
		return errs.New(errs.Invalid, "too many matches (over %d); narrow the pattern", maxGlobMatches)
	}
	return nil
}

// walk matches segs[i:] below dir, which is known to exist.
func (g *globber) walk(dir string, i int) error {
	st := globState{dir, i}
	if _, seen := g.visited[st]; seen {
		return nil
	}
	g.visited[st] = struct{}{}
	if err := g.ctx.Err(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "glob cancelled")
	}
	if i == len(g.segs) {
		return g.add(dir)
	}
	seg := g.segs[i]
	if seg == "**" {
		if err := g.walk(dir, i+1); err != nil {
			return err
		}
		for _, name := range g.names(dir) {
			child := path.Join(dir, name)
			// Lstat: "**" never descends through a symlink, so link
			// cycles cannot loop the walk.
			if fi, err := g.fs.Lstat(child); err == nil && fi.IsDir() {
				if err := g.walk(child, i); err != nil {
					return err
				}
			} else if err == nil && i+1 == len(g.segs) {
				if err := g.add(child); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !hasMeta(seg) {
		return g.step(path.Join(dir, seg), i)
	}
	for _, name := range g.names(dir) {
		if ok, _ := path.Match(seg, name); ok {
			if err := g.step(path.Join(dir, name), i); err != nil {
				return err
			}
		}
	}
	return nil
}

// step continues with child, which matched segs[i]. An explicit segment may
// cross a symlink (the pattern is finite, so no loop).
func (g *globber) step(child string, i int) error {
	if i+1 == len(g.segs) {
		if _, err := g.fs.Lstat(child); err != nil {
			return nil
		}
		return g.add(child)
	}
	fi, err := g.fs.Stat(child)
	if err == nil && fi.IsDir() {
		return g.walk(child, i+1)
	}
	if _, lerr := g.fs.Lstat(child); lerr == nil && onlyDoubleStars(g.segs[i+1:]) {
		// "/f/**" matches the file /f itself: "**" may match zero segments.
		return g.add(child)
	}
	return nil
}

func onlyDoubleStars(segs []string) bool {
	for _, s := range segs {
		if s != "**" {
			return false
		}
	}
	return true
}

// names lists dir, ignoring unreadable directories: a glob reports what it
// can see.
func (g *globber) names(dir string) []string {
	d, err := g.fs.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	return names
}

func (s *Server) handleGlob(w http.ResponseWriter, r *http.Request) {
	out, err := s.glob(r.Context(), r.URL.Query().Get("pattern"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, out)
}

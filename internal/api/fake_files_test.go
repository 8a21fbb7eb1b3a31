package api

import (
	"bytes"
	"context"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// The fake's file operations: one map of clean absolute paths per sandbox.

// filePath cleans p the way the real service does.
func filePath(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", errs.New(errs.Invalid, "path %q must be absolute", p)
	}
	return path.Clean(p), nil
}

// fileOp runs fn on the sandbox's file map under the lock.
func (f *fakeService) fileOp(id, p string, fn func(files map[string]fakeFile, clean string) error) error {
	clean, err := filePath(p)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.live(id); err != nil {
		return err
	}
	return fn(f.files[id], clean)
}

func (f *fakeService) ReadFile(_ context.Context, id, p string) (io.ReadCloser, int64, error) {
	var data []byte
	err := f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		ff, ok := files[clean]
		if !ok {
			return errs.New(errs.NotFound, "file not found: %s", clean)
		}
		data = ff.data
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func (f *fakeService) WriteFile(_ context.Context, id, p string, mode uint32, body io.Reader, size int64) error {
	if err := f.fileOp(id, p, func(map[string]fakeFile, string) error { return nil }); err != nil {
		return err
	}
	data, err := io.ReadAll(body) // outside the lock: bodies can be slow
	if err != nil {
		return errs.Wrap(errs.Internal, err, "write failed")
	}
	if size >= 0 && int64(len(data)) != size {
		return errs.New(errs.Invalid, "body has %d bytes, expected %d", len(data), size)
	}
	return f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		files[clean] = fakeFile{data: data, mode: mode, mod: f.now()}
		return nil
	})
}

func (f *fakeService) DeleteFile(_ context.Context, id, p string, recursive bool) error {
	return f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		if _, ok := files[clean]; !ok {
			return errs.New(errs.NotFound, "file not found: %s", clean)
		}
		delete(files, clean)
		return nil
	})
}

func (f *fakeService) ListFiles(_ context.Context, id, p string) ([]agent.FileInfo, error) {
	var out []agent.FileInfo
	err := f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		for name, ff := range files {
			if path.Dir(name) == clean {
				out = append(out, fakeInfo(name, ff))
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b agent.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, err
}

func fakeInfo(name string, ff fakeFile) agent.FileInfo {
	return agent.FileInfo{Path: name, Size: int64(len(ff.data)), Mode: strconv.FormatUint(uint64(ff.mode), 8), ModTime: ff.mod}
}

func (f *fakeService) StatFile(_ context.Context, id, p string) (agent.FileInfo, error) {
	var fi agent.FileInfo
	err := f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		ff, ok := files[clean]
		if !ok {
			return errs.New(errs.NotFound, "file not found: %s", clean)
		}
		fi = fakeInfo(clean, ff)
		return nil
	})
	return fi, err
}

func (f *fakeService) Glob(_ context.Context, id, pattern string) ([]string, error) {
	var out []string
	err := f.fileOp(id, pattern, func(files map[string]fakeFile, clean string) error {
		for name := range files {
			if ok, _ := path.Match(clean, name); ok {
				out = append(out, name)
			}
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

func (f *fakeService) MoveFile(_ context.Context, id, oldPath, newPath string) error {
	dst, err := filePath(newPath)
	if err != nil {
		return err
	}
	return f.fileOp(id, oldPath, func(files map[string]fakeFile, clean string) error {
		ff, ok := files[clean]
		if !ok {
			return errs.New(errs.NotFound, "file not found: %s", clean)
		}
		delete(files, clean)
		files[dst] = ff
		return nil
	})
}

func (f *fakeService) ChmodFile(_ context.Context, id, p, mode string) error {
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil {
		return errs.New(errs.Invalid, "bad mode %q", mode)
	}
	return f.fileOp(id, p, func(files map[string]fakeFile, clean string) error {
		ff, ok := files[clean]
		if !ok {
			return errs.New(errs.NotFound, "file not found: %s", clean)
		}
		ff.mode = uint32(m)
		files[clean] = ff
		return nil
	})
}

package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// uploadTree sends the local directory src as one tar stream, extracted
// under dst in the sandbox (created when missing).
func uploadTree(ctx context.Context, c *apiclient.Client, src, id, dst string) ([]copyStat, error) {
	pr, pw := io.Pipe()
	var stats []copyStat
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, werr error) error {
			if werr != nil {
				return werr
			}
			rel, err := filepath.Rel(src, p)
			if err != nil || rel == "." {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			} else if !fi.Mode().IsRegular() && !fi.IsDir() {
				return fmt.Errorf("%s: only regular files, directories and symlinks can be copied", p)
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(tw, f)
			stats = append(stats, copyStat{Source: p, Dest: id + ":" + path.Join(dst, hdr.Name), Bytes: n})
			return err
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	_, err := c.UploadArchive(ctx, id, dst, pr)
	pr.CloseWithError(err) // unblock the writer if the upload failed first
	return stats, err
}

// downloadTree fetches the sandbox directory src as a tar stream and
// extracts it into the local directory dst. Entries may not leave dst, by
// name or through a symlink the archive created.
func downloadTree(ctx context.Context, c *apiclient.Client, id, src, dst string) ([]copyStat, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(dst)
	if err != nil {
		return nil, err
	}
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, err
	}
	rc, err := c.DownloadArchive(ctx, id, src)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var stats []copyStat
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return stats, nil
		}
		if err != nil {
			return stats, fmt.Errorf("reading the archive of %s:%s: %w", id, src, err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			continue
		}
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return stats, fmt.Errorf("archive entry %q leaves the destination", hdr.Name)
		}
		target := filepath.Join(root, filepath.FromSlash(name))
		if err := insideRoot(root, filepath.Dir(target)); err != nil {
			return stats, err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return stats, err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return stats, err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return stats, err
			}
			_ = os.Remove(target) // never write through an existing symlink
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
			if err != nil {
				return stats, err
			}
			n, err := io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chmod(target, mode)
			}
			stats = append(stats, copyStat{Source: id + ":" + path.Join(src, name), Dest: target, Bytes: n})
			if err != nil {
				return stats, err
			}
		default:
			// hard links and specials are not recreated locally
		}
	}
}

// insideRoot fails when dir, with symlinks resolved, is outside root.
func insideRoot(root, dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return insideRoot(root, filepath.Dir(dir))
	}
	if err != nil {
		return err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return fmt.Errorf("archive entry under %s resolves outside the destination", dir)
	}
	return nil
}

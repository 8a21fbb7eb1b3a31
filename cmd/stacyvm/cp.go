package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// remotePath is "ID:/abs/path" split; ok is false for a local path.
func remotePath(arg string) (id, p string, ok bool) {
	i := strings.Index(arg, ":")
	if i <= 0 {
		return "", "", false
	}
	id, p = arg[:i], arg[i+1:]
	if strings.ContainsAny(id, `/\`) {
		return "", "", false // a local path that happens to contain ':'
	}
	return id, p, true
}

// copyStat is one copied file, for -o json.
type copyStat struct {
	Source string `json:"source"`
	Dest   string `json:"dest"`
	Bytes  int64  `json:"bytes"`
}

func newCpCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories to or from a sandbox",
		Long: "Copy a file or a directory tree between this machine and a sandbox.\n\n" +
			"One side is ID:PATH (PATH absolute inside the sandbox), the other a local path.\n" +
			"A local '-' is stdin or stdout (files only). When DST is an existing directory\n" +
			"the source's name is appended, as cp does. Files of any size are streamed;\n" +
			"directories travel as one tar stream (the archive API), keeping permission\n" +
			"bits and symlinks.",
		Example: "  stacyvm cp ./main.py sb-1a2b3c4d5e6f:/work/main.py\n" +
			"  stacyvm cp sb-1a2b3c4d5e6f:/work/out.csv .\n" +
			"  stacyvm cp ./project sb-1a2b3c4d5e6f:/work\n" +
			"  echo hi | stacyvm cp - sb-1a2b3c4d5e6f:/tmp/hi.txt",
		Args: withArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcID, srcPath, srcRemote := remotePath(args[0])
			dstID, dstPath, dstRemote := remotePath(args[1])
			c := g.client()
			var (
				stats []copyStat
				err   error
			)
			switch {
			case srcRemote == dstRemote:
				return usagef("exactly one of SRC and DST must be ID:PATH (a sandbox path), got %q and %q", args[0], args[1])
			case dstRemote:
				if !strings.HasPrefix(dstPath, "/") {
					return usagef("sandbox path must be absolute, got %q", args[1])
				}
				stats, err = upload(cmd.Context(), c, cmd.InOrStdin(), args[0], dstID, dstPath)
			default:
				if !strings.HasPrefix(srcPath, "/") {
					return usagef("sandbox path must be absolute, got %q", args[0])
				}
				stats, err = download(cmd.Context(), c, cmd.OutOrStdout(), srcID, srcPath, args[1])
			}
			if err != nil {
				return err
			}
			if g.jsonOutput() {
				return printJSON(cmd.OutOrStdout(), stats)
			}
			if args[1] == "-" {
				return nil // stdout carries the file itself
			}
			var total int64
			for _, s := range stats {
				total += s.Bytes
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "copied %d file(s), %d bytes\n", len(stats), total)
			return nil
		},
	}
	return cmd
}

// upload copies the local src (a file, a directory tree or "-") to id:dst.
func upload(ctx context.Context, c *apiclient.Client, stdin io.Reader, src, id, dst string) ([]copyStat, error) {
	if src == "-" {
		n, err := c.Upload(ctx, id, dst, stdin)
		return []copyStat{{Source: "-", Dest: id + ":" + dst, Bytes: n}}, err
	}
	info, err := os.Stat(src)
	if err != nil {
		return nil, usageError{err}
	}
	// An existing directory (or a path ending in /) as the destination
	// receives src by its name.
	if strings.HasSuffix(dst, "/") {
		dst = path.Join(dst, filepath.Base(filepath.Clean(src)))
	} else if fi, err := c.StatFile(ctx, id, dst); err == nil && fi.IsDir {
		dst = path.Join(dst, filepath.Base(filepath.Clean(src)))
	} else if err != nil && !apiclient.IsNotFound(err) {
		return nil, err
	}
	if !info.IsDir() {
		st, err := uploadFile(ctx, c, src, info.Mode(), id, dst)
		return []copyStat{st}, err
	}
	return uploadTree(ctx, c, src, id, dst)
}

func uploadFile(ctx context.Context, c *apiclient.Client, src string, mode fs.FileMode, id, dst string) (copyStat, error) {
	f, err := os.Open(src)
	if err != nil {
		return copyStat{}, err
	}
	defer f.Close()
	n, err := c.Upload(ctx, id, dst, f)
	if err != nil {
		return copyStat{}, err
	}
	if perm := mode.Perm(); perm != 0o644 {
		if err := c.Chmod(ctx, id, dst, fmt.Sprintf("%04o", perm)); err != nil {
			return copyStat{}, err
		}
	}
	return copyStat{Source: src, Dest: id + ":" + dst, Bytes: n}, nil
}

// download copies id:src (a file or a directory tree) to the local dst or
// to stdout ("-").
func download(ctx context.Context, c *apiclient.Client, stdout io.Writer, id, src, dst string) ([]copyStat, error) {
	fi, err := c.StatFile(ctx, id, src)
	if err != nil {
		return nil, err
	}
	if dst == "-" {
		if fi.IsDir {
			return nil, usagef("%s:%s is a directory: copy it to a local directory, not to stdout", id, src)
		}
		n, err := downloadTo(ctx, c, id, src, stdout)
		return []copyStat{{Source: id + ":" + src, Dest: "-", Bytes: n}}, err
	}
	if strings.HasSuffix(dst, string(filepath.Separator)) {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
	}
	if li, err := os.Stat(dst); err == nil && li.IsDir() {
		dst = filepath.Join(dst, path.Base(src))
	}
	if !fi.IsDir {
		st, err := downloadFile(ctx, c, id, *fi, dst)
		return []copyStat{st}, err
	}
	return downloadTree(ctx, c, id, src, dst)
}

func downloadFile(ctx context.Context, c *apiclient.Client, id string, fi apiclient.FileInfo, dst string) (copyStat, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return copyStat{}, err
	}
	perm := fileMode(fi.Mode)
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return copyStat{}, err
	}
	n, err := downloadTo(ctx, c, id, fi.Path, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, perm)
	}
	return copyStat{Source: id + ":" + fi.Path, Dest: dst, Bytes: n}, err
}

func downloadTo(ctx context.Context, c *apiclient.Client, id, src string, w io.Writer) (int64, error) {
	rc, err := c.Download(ctx, id, src)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(w, rc)
}

// fileMode parses the API's octal mode digits ("644"); unknown is 0644.
func fileMode(s string) fs.FileMode {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0o644
	}
	return fs.FileMode(m).Perm()
}

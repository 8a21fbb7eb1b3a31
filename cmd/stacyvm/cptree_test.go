package main

import (
	"archive/tar"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/apiclient"
)

// TestDownloadTree_RefusesEscapes serves hostile archives and checks that
// nothing is written outside the destination.
func TestDownloadTree_RefusesEscapes(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []tar.Header
		wantErr string
	}{
		{"dot-dot name", []tar.Header{{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644}}, "leaves the destination"},
		{"absolute name", []tar.Header{{Name: "/etc/escape", Typeflag: tar.TypeReg, Mode: 0o644}}, "leaves the destination"},
		{"write through a symlink", []tar.Header{
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		}, "outside the destination"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.entries {
				h := h
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-tar")
				w.Write(buf.Bytes())
			}))
			defer srv.Close()
			dst := filepath.Join(t.TempDir(), "dst")
			_, err := downloadTree(context.Background(), apiclient.New(srv.URL, ""), "sb-0123456789ab", "/x", dst)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("files written outside the destination: %v", ents)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(dst), "escape")); err == nil {
				t.Errorf("../escape was written")
			}
		})
	}
}

func TestRemotePath(t *testing.T) {
	tests := []struct {
		arg, id, path string
		ok            bool
	}{
		{"sb-1:/work/a", "sb-1", "/work/a", true},
		{"sb-1:rel", "sb-1", "rel", true},
		{"./a:b", "", "", false},
		{"dir/a:b", "", "", false},
		{"plain", "", "", false},
		{":/x", "", "", false},
	}
	for _, tt := range tests {
		id, p, ok := remotePath(tt.arg)
		if id != tt.id || p != tt.path || ok != tt.ok {
			t.Errorf("remotePath(%q) = %q %q %v, want %q %q %v", tt.arg, id, p, ok, tt.id, tt.path, tt.ok)
		}
	}
}

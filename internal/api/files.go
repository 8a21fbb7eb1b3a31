package api

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// fileInfoJSON is FileInfo (API.md) with mod_time in UTC RFC 3339.
type fileInfoJSON struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	Mode    string `json:"mode"`
	IsDir   bool   `json:"is_dir"`
	ModTime string `json:"mod_time"`
}

func toFileInfoJSON(fi agent.FileInfo) fileInfoJSON {
	return fileInfoJSON{Path: fi.Path, Size: fi.Size, Mode: fi.Mode, IsDir: fi.IsDir, ModTime: rfc3339(fi.ModTime)}
}

// writeFileBody is the body of POST /sandboxes/{id}/files.
type writeFileBody struct {
	Path     string `json:"path"`
	Content  string `json:"content"`
	Mode     string `json:"mode"`
	Encoding string `json:"encoding"`
}

func (s *server) writeFile(w http.ResponseWriter, r *http.Request) error {
	var b writeFileBody
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := requireField("path", b.Path); err != nil {
		return err
	}
	if b.Mode == "" {
		b.Mode = "0644"
	}
	mode, err := parseMode("mode", b.Mode)
	if err != nil {
		return err
	}
	content := []byte(b.Content)
	switch b.Encoding {
	case "":
	case "base64":
		content, err = base64.StdEncoding.DecodeString(b.Content)
		if err != nil {
			return errs.New(errs.Invalid, "field \"content\" is not valid base64")
		}
	default:
		return errs.New(errs.Invalid, "field \"encoding\" must be \"base64\" or omitted, got %q", b.Encoding)
	}
	err = s.svc.WriteFile(r.Context(), r.PathValue("id"), b.Path, mode, bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusJSON{"written"})
	return nil
}

func (s *server) readFile(w http.ResponseWriter, r *http.Request) error {
	path, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	rc, size, err := s.svc.ReadFile(r.Context(), r.PathValue("id"), path)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent; the client sees a short body. Log only.
		s.log.WarnContext(r.Context(), "file read interrupted", "error", err, "request_id", requestIDFrom(r.Context()))
	}
	return nil
}

func (s *server) deleteFile(w http.ResponseWriter, r *http.Request) error {
	path, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	recursive := false
	if v := r.URL.Query().Get("recursive"); v != "" {
		if recursive, err = strconv.ParseBool(v); err != nil {
			return errs.New(errs.Invalid, "query parameter \"recursive\" must be true or false, got %q", v)
		}
	}
	if err := s.svc.DeleteFile(r.Context(), r.PathValue("id"), path, recursive); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusJSON{"deleted"})
	return nil
}

// countingReader counts bytes and remembers whether the body limit was hit,
// so a 413 survives services that do not wrap reader errors with %w.
type countingReader struct {
	r      io.Reader
	n      int64
	tooBig bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		c.tooBig = true
	}
	return n, err
}

func (s *server) uploadFile(w http.ResponseWriter, r *http.Request) error {
	path, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	modeStr := r.URL.Query().Get("mode")
	if modeStr == "" {
		modeStr = "0644"
	}
	mode, err := parseMode("mode", modeStr)
	if err != nil {
		return err
	}
	if r.ContentLength > s.maxUpload {
		// Refuse before reading a byte of it.
		return &http.MaxBytesError{Limit: s.maxUpload}
	}
	body := &countingReader{r: http.MaxBytesReader(w, r.Body, s.maxUpload)}
	err = s.svc.WriteFile(r.Context(), r.PathValue("id"), path, mode, body, r.ContentLength)
	if body.tooBig {
		return &http.MaxBytesError{Limit: s.maxUpload}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		Size   int64  `json:"size"`
	}{"written", body.n})
	return nil
}

func (s *server) listFiles(w http.ResponseWriter, r *http.Request) error {
	path := r.URL.Query().Get("path")
	if path == "" {
		path = "/"
	}
	fis, err := s.svc.ListFiles(r.Context(), r.PathValue("id"), path)
	if err != nil {
		return err
	}
	out := make([]fileInfoJSON, 0, len(fis))
	for _, fi := range fis {
		out = append(out, toFileInfoJSON(fi))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) statFile(w http.ResponseWriter, r *http.Request) error {
	path, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	fi, err := s.svc.StatFile(r.Context(), r.PathValue("id"), path)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toFileInfoJSON(fi))
	return nil
}

func (s *server) globFiles(w http.ResponseWriter, r *http.Request) error {
	pattern, err := queryRequired(r, "pattern")
	if err != nil {
		return err
	}
	out, err := s.svc.Glob(r.Context(), r.PathValue("id"), pattern)
	if err != nil {
		return err
	}
	writeList(w, out)
	return nil
}

func (s *server) moveFile(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		OldPath string `json:"old_path"`
		NewPath string `json:"new_path"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := requireField("old_path", b.OldPath); err != nil {
		return err
	}
	if err := requireField("new_path", b.NewPath); err != nil {
		return err
	}
	if err := s.svc.MoveFile(r.Context(), r.PathValue("id"), b.OldPath, b.NewPath); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusJSON{"moved"})
	return nil
}

func (s *server) chmodFile(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Path string `json:"path"`
		Mode string `json:"mode"`
	}
	if err := s.decodeJSON(w, r, &b, true); err != nil {
		return err
	}
	if err := requireField("path", b.Path); err != nil {
		return err
	}
	if err := requireField("mode", b.Mode); err != nil {
		return err
	}
	if _, err := parseMode("mode", b.Mode); err != nil {
		return err
	}
	if err := s.svc.ChmodFile(r.Context(), r.PathValue("id"), b.Path, b.Mode); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusJSON{"chmod applied"})
	return nil
}

package api

import (
	"context"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// ArchiveService moves directory trees as tar streams and watches files.
// The sandbox service implements it; a Service without it answers these
// routes with a typed "not supported" error.
type ArchiveService interface {
	ReadArchive(ctx context.Context, id, dir string, gz bool) (io.ReadCloser, error)
	WriteArchive(ctx context.Context, id, dir string, body io.Reader, gz bool) (agent.ArchiveResult, error)
	WatchFiles(ctx context.Context, id, path string, recursive bool, fn func(agent.WatchEvent) error) error
}

func (s *server) archiveService() (ArchiveService, error) {
	as, ok := s.svc.(ArchiveService)
	if !ok {
		return nil, errs.New(errs.Invalid, "archives and file watches are not supported by this server's sandbox service")
	}
	return as, nil
}

// queryBool parses an optional boolean query parameter.
func queryBool(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errs.New(errs.Invalid, "query parameter %q must be true or false, got %q", key, v)
	}
	return b, nil
}

// downloadArchive streams ?path=DIR as a tar (application/x-tar), or as a
// gzip-compressed tar (application/gzip) with ?gzip=true.
func (s *server) downloadArchive(w http.ResponseWriter, r *http.Request) error {
	as, err := s.archiveService()
	if err != nil {
		return err
	}
	dir, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	gz, err := queryBool(r, "gzip")
	if err != nil {
		return err
	}
	rc, err := as.ReadArchive(r.Context(), r.PathValue("id"), dir, gz)
	if err != nil {
		return err
	}
	defer rc.Close()
	name := path.Base(path.Clean("/" + dir))
	if name == "/" || name == "." {
		name = "root"
	}
	h := w.Header()
	ctype, ext := "application/x-tar", ".tar"
	if gz {
		ctype, ext = "application/gzip", ".tar.gz"
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Disposition", `attachment; filename="`+strings.Map(safeFilenameRune, name)+ext+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if _, err := io.CopyBuffer(w, rc, make([]byte, 256<<10)); err != nil {
		// The status is sent: abort so the client sees a broken transfer,
		// never a complete-looking truncated archive.
		s.log.WarnContext(r.Context(), "archive download interrupted", "error", err, "request_id", requestIDFrom(r.Context()))
		panic(http.ErrAbortHandler)
	}
	return nil
}

func safeFilenameRune(c rune) rune {
	if c < 0x20 || c == 0x7f || c == '"' || c == '\\' || c > 0x7e {
		return '_'
	}
	return c
}

// uploadArchive extracts a tar body under ?path=DIR (created when missing).
// The body is gzip-compressed with ?gzip=true, "Content-Encoding: gzip" or
// "Content-Type: application/gzip". The upload limit applies to the body as
// sent.
func (s *server) uploadArchive(w http.ResponseWriter, r *http.Request) error {
	as, err := s.archiveService()
	if err != nil {
		return err
	}
	dir, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	gz, err := queryBool(r, "gzip")
	if err != nil {
		return err
	}
	switch ce := strings.ToLower(r.Header.Get("Content-Encoding")); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		gz = true
	default:
		return errs.New(errs.Invalid, "Content-Encoding %q is not supported (gzip or none)", ce)
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) == "application/gzip" {
		gz = true
	}
	if r.ContentLength > s.maxUpload {
		return &http.MaxBytesError{Limit: s.maxUpload}
	}
	body := &countingReader{r: r.Body}
	res, err := as.WriteArchive(r.Context(), r.PathValue("id"), dir, body, gz)
	if body.tooBig {
		return &http.MaxBytesError{Limit: s.maxUpload}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		agent.ArchiveResult
		Received int64 `json:"received_bytes"`
	}{"extracted", res, body.n})
	return nil
}

package e2bfake

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// The envd API on port 49983 (github.com/e2b-dev/E2B spec/envd/envd.yaml
// and spec/envd/process/process.proto), served for each fake sandbox by
// docker operations on its container.

// envdUser maps envd's two users to a container uid and home.
func envdUser(name string) (uid, home string, ok bool) {
	switch name {
	case "root":
		return "0", "/root", true
	case "user":
		return "1000", "/home/user", true
	}
	return "", "", false
}

func (s *Server) serveEnvd(w http.ResponseWriter, r *http.Request, id string) {
	sb := s.lookup(id)
	if sb == nil {
		proxyError(w, id, envdPort, "The sandbox was not found")
		return
	}
	if sb.accessToken != "" && r.Header.Get("X-Access-Token") != sb.accessToken {
		writeJSON(w, http.StatusUnauthorized, apiError{Code: 401, Message: "unauthorized access, please provide a valid access token"})
		return
	}
	switch {
	case r.URL.Path == "/health" && r.Method == http.MethodGet:
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/files" && r.Method == http.MethodPost:
		s.envdUpload(w, r, sb)
	case r.URL.Path == "/process.Process/Start" && r.Method == http.MethodPost:
		s.envdStart(w, r, sb)
	default:
		writeJSON(w, http.StatusNotFound, apiError{Code: 404, Message: "not found (this fake serves /health, POST /files and process.Process/Start)"})
	}
}

func (s *Server) envdUpload(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	username := r.URL.Query().Get("username")
	uidS, home, ok := envdUser(username)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, apiError{Code: 401, Message: "invalid user: " + username})
		return
	}
	p := r.URL.Query().Get("path")
	if p == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "path is required"})
		return
	}
	if !strings.HasPrefix(p, "/") {
		p = path.Join(home, p)
	}
	p = path.Clean(p)
	mr, err := r.MultipartReader()
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "expected multipart/form-data: " + err.Error()})
		return
	}
	var data []byte
	for {
		part, err := mr.NextPart()
		if err != nil {
			break
		}
		if part.FormName() == "file" {
			data, err = io.ReadAll(io.LimitReader(part, 512<<20))
			if err != nil {
				writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "reading file part: " + err.Error()})
				return
			}
			break
		}
	}
	if data == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "no file part"})
		return
	}
	ctx := r.Context()
	dir := path.Dir(p)
	if _, _, err := s.execWait(ctx, sb, []string{"mkdir", "-p", dir}, "0"); err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{Code: 500, Message: "creating parent directory: " + err.Error()})
		return
	}
	uid, _ := strconv.Atoi(uidS)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: path.Base(p), Mode: 0o644, Size: int64(len(data)), Uid: uid, Gid: uid, ModTime: time.Now(), Typeflag: tar.TypeReg})
	tw.Write(data)
	tw.Close()
	if _, err := s.docker.CopyToContainer(ctx, sb.container, client.CopyToContainerOptions{DestinationPath: dir, Content: &buf, CopyUIDGID: true}); err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{Code: 500, Message: "writing file: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, []map[string]string{{"path": p, "name": path.Base(p), "type": "file"}})
}

// execWait runs argv in the sandbox and returns its exit code and output.
func (s *Server) execWait(ctx context.Context, sb *sandbox, argv []string, user string) (int, []byte, error) {
	ex, err := s.docker.ExecCreate(ctx, sb.container, client.ExecCreateOptions{Cmd: argv, User: user, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, nil, err
	}
	at, err := s.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, nil, err
	}
	out, _ := io.ReadAll(at.Reader)
	at.Close()
	in, err := s.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return 0, out, err
	}
	if in.ExitCode != 0 {
		return in.ExitCode, out, &exitError{code: in.ExitCode, out: string(out)}
	}
	return 0, out, nil
}

type exitError struct {
	code int
	out  string
}

func (e *exitError) Error() string {
	return "exit " + strconv.Itoa(e.code) + ": " + strings.TrimSpace(e.out)
}

// startRequest is process.StartRequest in protobuf JSON.
type startRequest struct {
	Process struct {
		Cmd  string            `json:"cmd"`
		Args []string          `json:"args"`
		Envs map[string]string `json:"envs"`
		Cwd  *string           `json:"cwd"`
	} `json:"process"`
	Tag *string `json:"tag"`
}

// envdStart is process.Process/Start over the Connect protocol, JSON codec:
// one enveloped request; the answer a stream of enveloped ProcessEvents and
// an end-stream envelope. The process outlives the stream, as in envd.
func (s *Server) envdStart(w http.ResponseWriter, r *http.Request, sb *sandbox) {
	if ct := r.Header.Get("Content-Type"); ct != "application/connect+json" {
		w.Header().Set("Accept-Post", "application/connect+json")
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", "application/connect+json")
	username := "user"
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic "); ok {
		if b, err := base64.StdEncoding.DecodeString(a); err == nil {
			username, _, _ = strings.Cut(string(b), ":")
		}
	}
	uid, _, ok := envdUser(username)
	if !ok {
		endStream(w, "unauthenticated", "invalid user: "+username)
		return
	}
	br := bufio.NewReader(io.LimitReader(r.Body, 1<<20))
	var h [5]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		endStream(w, "invalid_argument", "missing request envelope")
		return
	}
	msg := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(br, msg); err != nil {
		endStream(w, "invalid_argument", "short request envelope")
		return
	}
	s.recordBody(msg)
	var req startRequest
	if err := json.Unmarshal(msg, &req); err != nil || req.Process.Cmd == "" {
		endStream(w, "invalid_argument", "invalid StartRequest")
		return
	}
	opts := client.ExecCreateOptions{Cmd: append([]string{req.Process.Cmd}, req.Process.Args...), User: uid, AttachStdout: true, AttachStderr: true}
	for k, v := range req.Process.Envs {
		opts.Env = append(opts.Env, k+"="+v)
	}
	if req.Process.Cwd != nil {
		opts.WorkingDir = *req.Process.Cwd
	}
	ctx := context.WithoutCancel(r.Context())
	ex, err := s.docker.ExecCreate(ctx, sb.container, opts)
	if err != nil {
		endStream(w, "internal", "start process: "+err.Error())
		return
	}
	at, err := s.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		endStream(w, "internal", "start process: "+err.Error())
		return
	}
	if !sb.track(at.Conn) {
		at.Close()
		endStream(w, "not_found", "sandbox is gone")
		return
	}
	in, _ := s.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	w.WriteHeader(http.StatusOK)
	writeEvent(w, map[string]any{"start": map[string]any{"pid": in.PID}})

	// The drain is owned by the server: it outlives this request (the
	// client may hang up; the process keeps running, its output dropped)
	// and ends when the process ends or the sandbox is killed.
	type chunk struct {
		stream byte
		data   []byte
	}
	out := make(chan chunk, 16)
	left := make(chan struct{})
	s.wg.Go(func() {
		defer close(out)
		defer sb.untrack(at.Conn)
		defer at.Close()
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(at.Reader, hdr[:]); err != nil {
				return
			}
			b := make([]byte, binary.BigEndian.Uint32(hdr[4:]))
			if _, err := io.ReadFull(at.Reader, b); err != nil {
				return
			}
			select {
			case out <- chunk{hdr[0], b}:
			case <-left:
			}
		}
	})
	defer close(left)
	for {
		select {
		case c, ok := <-out:
			if !ok {
				code := -1
				if in, err := s.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{}); err == nil {
					code = in.ExitCode
				}
				writeEvent(w, map[string]any{"end": map[string]any{"exitCode": code, "exited": true, "status": "exit status " + strconv.Itoa(code)}})
				writeEnvelope(w, 0x02, []byte("{}"))
				return
			}
			key := "stdout"
			if c.stream == 2 {
				key = "stderr"
			}
			writeEvent(w, map[string]any{"data": map[string]any{key: c.data}}) // bytes: base64 in protobuf JSON
		case <-r.Context().Done():
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, ev map[string]any) {
	b, _ := json.Marshal(map[string]any{"event": ev})
	writeEnvelope(w, 0, b)
}

func writeEnvelope(w http.ResponseWriter, flags byte, b []byte) {
	var h [5]byte
	h[0] = flags
	binary.BigEndian.PutUint32(h[1:], uint32(len(b)))
	w.Write(h[:])
	w.Write(b)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// endStream answers a streaming call with only an end-stream error, as
// Connect servers do (HTTP 200; the error is in the last envelope).
func endStream(w http.ResponseWriter, code, msg string) {
	w.WriteHeader(http.StatusOK)
	b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	writeEnvelope(w, 0x02, b)
}

package e2bfake

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// envdPort is envd's port inside every sandbox.
const envdPort = 49983

// defaultTimeout is NewSandbox.timeout's default in E2B's spec (seconds).
const defaultTimeout = 15

// maxTimeout is E2B's longest sandbox life (Pro plan: 24 h).
const maxTimeout = 24 * 60 * 60

type sandbox struct {
	id, templateID, clientID string
	container, ip            string
	accessToken              string
	metadata, envVars        map[string]string
	allowInternet            bool
	startedAt, endAt         time.Time
	timer                    *time.Timer

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // proxied and attach connections, closed on kill
	dead   bool
}

// track registers c to be closed when the sandbox dies; false if it is dead.
func (sb *sandbox) track(c net.Conn) bool {
	sb.connMu.Lock()
	defer sb.connMu.Unlock()
	if sb.dead {
		return false
	}
	sb.conns[c] = struct{}{}
	return true
}

func (sb *sandbox) untrack(c net.Conn) {
	sb.connMu.Lock()
	delete(sb.conns, c)
	sb.connMu.Unlock()
}

func (sb *sandbox) closeConns() {
	sb.connMu.Lock()
	sb.dead = true
	conns := sb.conns
	sb.conns = nil
	sb.connMu.Unlock()
	for c := range conns { // outside the lock: Close untracks
		c.Close()
	}
}

// serveAPI is the control plane (spec/openapi.yml paths /sandboxes...).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-API-Key")), []byte(s.cfg.APIKey)) != 1 {
		writeJSON(w, http.StatusUnauthorized, apiError{Code: 401, Message: "Invalid API key, please visit https://e2b.dev/docs/api-key for more information."})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/health" && r.Method == http.MethodGet:
		w.WriteHeader(http.StatusOK)
	case path == "/sandboxes" && r.Method == http.MethodPost:
		s.apiCreate(w, r)
	case path == "/sandboxes" && r.Method == http.MethodGet:
		s.apiList(w, r)
	case strings.HasPrefix(path, "/sandboxes/"):
		rest := strings.TrimPrefix(path, "/sandboxes/")
		id, action, _ := strings.Cut(rest, "/")
		switch {
		case action == "" && r.Method == http.MethodGet:
			s.apiGet(w, id)
		case action == "" && r.Method == http.MethodDelete:
			s.apiKill(w, r, id)
		case action == "timeout" && r.Method == http.MethodPost:
			s.apiTimeout(w, r, id)
		default:
			writeJSON(w, http.StatusNotFound, apiError{Code: 404, Message: "not found"})
		}
	default:
		writeJSON(w, http.StatusNotFound, apiError{Code: 404, Message: "not found"})
	}
}

type newSandbox struct {
	TemplateID          string            `json:"templateID"`
	Timeout             *int              `json:"timeout"`
	AutoPause           bool              `json:"autoPause"`
	Secure              *bool             `json:"secure"`
	AllowInternetAccess *bool             `json:"allow_internet_access"`
	Metadata            map[string]string `json:"metadata"`
	EnvVars             map[string]string `json:"envVars"`
}

func notFound(w http.ResponseWriter, id string) {
	writeJSON(w, http.StatusNotFound, apiError{Code: 404, Message: "sandbox \"" + id + "\" doesn't exist or you don't have access to it"})
}

func (s *Server) apiCreate(w http.ResponseWriter, r *http.Request) {
	var req newSandbox
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.recordBody(body)
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "Error when parsing request: " + err.Error()})
		return
	}
	if req.TemplateID == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "templateID is required"})
		return
	}
	image, ok := s.cfg.Templates[req.TemplateID]
	if !ok {
		// E2B answers an unknown template with 404 (not listed in the spec).
		writeJSON(w, http.StatusNotFound, apiError{Code: 404, Message: "template '" + req.TemplateID + "' not found"})
		return
	}
	timeout := defaultTimeout
	if req.Timeout != nil {
		timeout = *req.Timeout
	}
	if timeout < 0 || timeout > maxTimeout {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "timeout out of range"})
		return
	}
	sb := &sandbox{
		id: randomID(20), templateID: req.TemplateID, clientID: "6532622b",
		metadata: req.Metadata, envVars: req.EnvVars,
		allowInternet: req.AllowInternetAccess == nil || *req.AllowInternetAccess,
		conns:         map[net.Conn]struct{}{},
	}
	if s.cfg.Secure || (req.Secure != nil && *req.Secure) {
		sb.accessToken = randomHex(16)
	}
	if err := s.startContainer(r.Context(), sb, image); err != nil {
		s.log.Warn("e2bfake: start container", "err", err)
		writeJSON(w, http.StatusInternalServerError, apiError{Code: 500, Message: "Failed to create sandbox"})
		return
	}
	sb.startedAt = time.Now().UTC()
	sb.endAt = sb.startedAt.Add(time.Duration(timeout) * time.Second)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.removeContainer(context.WithoutCancel(r.Context()), sb.container)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Code: 503, Message: "shutting down"})
		return
	}
	s.sandboxes[sb.id] = sb
	sb.timer = time.AfterFunc(time.Until(sb.endAt), func() { s.expire(sb.id) })
	s.mu.Unlock()
	out := map[string]any{
		"templateID": sb.templateID, "sandboxID": sb.id, "clientID": sb.clientID,
		"envdVersion": "0.2.4", "domain": nil,
	}
	if sb.accessToken != "" {
		out["envdAccessToken"] = sb.accessToken
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) recordBody(b []byte) {
	s.mu.Lock()
	if n := len(s.requests); n > 0 {
		s.requests[n-1].Body = b
	}
	s.mu.Unlock()
}

func (s *Server) startContainer(ctx context.Context, sb *sandbox, image string) error {
	env := make([]string, 0, len(sb.envVars))
	for _, k := range slices.Sorted(maps.Keys(sb.envVars)) {
		env = append(env, k+"="+sb.envVars[k])
	}
	labels := maps.Clone(s.cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["e2bfake.sandbox"] = sb.id
	res, err := s.docker.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "e2bfake-" + sb.id,
		Config: &container.Config{
			Image: image, Env: env, Labels: labels, Hostname: "e2b",
			// The microVM's init: it only has to stay up.
			Cmd: []string{"sleep", "2147483647"},
		},
		HostConfig: &container.HostConfig{Init: new(true)},
	})
	if err != nil {
		return err
	}
	sb.container = res.ID
	if _, err := s.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		s.removeContainer(context.WithoutCancel(ctx), res.ID)
		return err
	}
	in, err := s.docker.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		s.removeContainer(context.WithoutCancel(ctx), res.ID)
		return err
	}
	for _, n := range in.Container.NetworkSettings.Networks {
		if n.IPAddress.IsValid() {
			sb.ip = n.IPAddress.String()
			break
		}
	}
	return nil
}

func (s *Server) removeContainer(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.docker.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
}

func (s *Server) lookup(id string) *sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sandboxes[id]
}

// detail is SandboxDetail / ListedSandbox.
func (sb *sandbox) detail() map[string]any {
	return map[string]any{
		"templateID": sb.templateID, "sandboxID": sb.id, "clientID": sb.clientID,
		"startedAt": sb.startedAt, "endAt": sb.endAt, "envdVersion": "0.2.4",
		"cpuCount": 2, "memoryMB": 512, "diskSizeMB": 1024,
		"metadata": sb.metadata, "state": "running",
	}
}

func (s *Server) apiGet(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sb := s.sandboxes[id]
	var d map[string]any
	if sb != nil {
		d = sb.detail()
		d["domain"] = nil
		if sb.accessToken != "" {
			d["envdAccessToken"] = sb.accessToken
		}
	}
	s.mu.Unlock()
	if sb == nil {
		notFound(w, id)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	var match url.Values
	if m := r.URL.Query().Get("metadata"); m != "" {
		var err error
		if match, err = url.ParseQuery(m); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "invalid metadata query"})
			return
		}
	}
	out := []map[string]any{}
	s.mu.Lock()
	for _, sb := range s.sandboxes {
		ok := true
		for k := range match {
			if sb.metadata[k] != match.Get(k) {
				ok = false
			}
		}
		if ok {
			out = append(out, sb.detail())
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiKill(w http.ResponseWriter, r *http.Request, id string) {
	if !s.kill(r.Context(), id) {
		notFound(w, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiTimeout(w http.ResponseWriter, r *http.Request, id string) {
	var req struct {
		Timeout *int `json:"timeout"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	s.recordBody(body)
	if json.Unmarshal(body, &req) != nil || req.Timeout == nil || *req.Timeout < 0 || *req.Timeout > maxTimeout {
		writeJSON(w, http.StatusBadRequest, apiError{Code: 400, Message: "timeout is required (0 to 86400 seconds)"})
		return
	}
	s.mu.Lock()
	sb := s.sandboxes[id]
	if sb != nil {
		sb.endAt = time.Now().UTC().Add(time.Duration(*req.Timeout) * time.Second)
		sb.timer.Reset(time.Until(sb.endAt))
	}
	s.mu.Unlock()
	if sb == nil {
		notFound(w, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// expire kills a sandbox whose timeout passed (unless it was extended).
func (s *Server) expire(id string) {
	s.mu.Lock()
	sb := s.sandboxes[id]
	if sb == nil || time.Now().Before(sb.endAt) {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.kill(ctx, id)
}

// kill removes a sandbox and its container; false if it did not exist.
func (s *Server) kill(ctx context.Context, id string) bool {
	s.mu.Lock()
	sb := s.sandboxes[id]
	delete(s.sandboxes, id)
	s.mu.Unlock()
	if sb == nil {
		return false
	}
	sb.timer.Stop()
	sb.closeConns()
	s.removeContainer(context.WithoutCancel(ctx), sb.container)
	return true
}

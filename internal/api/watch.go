package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// watchPing is how often an idle watch stream sends an SSE comment, so
// proxies keep it open and a vanished client is noticed.
const watchPing = 15 * time.Second

// watchFiles streams create/modify/delete events under ?path= as
// server-sent events ("event: <type>", JSON data), starting with "ready".
// ?recursive=false watches only the directory itself.
func (s *server) watchFiles(w http.ResponseWriter, r *http.Request) error {
	as, err := s.archiveService()
	if err != nil {
		return err
	}
	p, err := queryRequired(r, "path")
	if err != nil {
		return err
	}
	recursive := true
	if v := r.URL.Query().Get("recursive"); v != "" {
		if recursive, err = strconv.ParseBool(v); err != nil {
			return errs.New(errs.Invalid, "query parameter \"recursive\" must be true or false, got %q", v)
		}
	}
	rc := http.NewResponseController(w)
	var mu sync.Mutex // the event callback and the pinger both write
	started := false
	send := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	stopPing := make(chan struct{})
	var pingers sync.WaitGroup
	defer func() { close(stopPing); pingers.Wait() }()
	err = as.WatchFiles(r.Context(), r.PathValue("id"), p, recursive, func(ev agent.WatchEvent) error {
		if !started {
			// Headers wait for the agent's "ready": a missing path is
			// still a proper 404 instead of a broken stream.
			started = true
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			w.WriteHeader(http.StatusOK)
			pingers.Add(1)
			go func() {
				defer pingers.Done()
				t := time.NewTicker(watchPing)
				defer t.Stop()
				for {
					select {
					case <-stopPing:
						return
					case <-t.C:
						if send([]byte(": ping\n\n")) != nil {
							return
						}
					}
				}
			}()
		}
		data, _ := json.Marshal(ev)
		return send([]byte("event: " + ev.Type + "\ndata: " + string(data) + "\n\n"))
	})
	if !started {
		return err
	}
	if err != nil && r.Context().Err() == nil {
		s.log.InfoContext(r.Context(), "file watch ended", "error", err, "request_id", requestIDFrom(r.Context()))
		b, _ := json.Marshal(errorBody{Code: errs.ClassOf(err).Code(), Message: errs.Message(err)})
		send([]byte("event: error\ndata: " + string(b) + "\n\n"))
	}
	return nil
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// errorBody is the wire shape of every error (API.md).
type errorBody struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// httpError is an error that only exists at the HTTP layer (no route,
// wrong method); it carries its own status and code.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errNoRoute() error {
	return &httpError{http.StatusNotFound, errs.NotFound.Code(), "no such route"}
}

func errMethod(method string) error {
	return &httpError{http.StatusMethodNotAllowed, errs.Invalid.Code(),
		fmt.Sprintf("method %s is not allowed on this route", method)}
}

// publicError resolves err to what a client may see: status, code and a
// safe message. Internal errors get a generated error id; the real error is
// logged here with that id and never leaves the server.
func (s *server) publicError(r *http.Request, err error) (status int, code, msg string) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.code, he.msg
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, errs.TooLarge.Code(),
			fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit)
	}
	class := errs.ClassOf(err)
	ctx := r.Context()
	if class != errs.Internal {
		if class == errs.Unavailable {
			s.log.WarnContext(ctx, "service unavailable", "error", err, "request_id", requestIDFrom(ctx))
		}
		return class.HTTPStatus(), class.Code(), errs.Message(err)
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away; nobody will read the body.
		s.log.InfoContext(ctx, "request canceled by client", "request_id", requestIDFrom(ctx))
		return http.StatusInternalServerError, errs.Internal.Code(), "request canceled"
	}
	errorID := "err-" + randomHex(6)
	s.log.LogAttrs(ctx, slog.LevelError, "internal error",
		slog.String("error_id", errorID),
		slog.String("error", err.Error()),
		slog.String("request_id", requestIDFrom(ctx)),
		slog.String("route", infoFrom(ctx).route),
	)
	return http.StatusInternalServerError, errs.Internal.Code(),
		"internal error (error id " + errorID + ")"
}

// writeError renders err as the JSON error body with its mapped status.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := s.publicError(r, err)
	writeJSON(w, status, errorBody{Code: code, Message: msg, RequestID: requestIDFrom(r.Context())})
}

// writeJSON writes v as a JSON response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only reachable with a programming error (unmarshalable type).
		status = http.StatusInternalServerError
		body = []byte(`{"code":"INTERNAL_ERROR","message":"internal error: response encoding failed"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeList answers 200 with a JSON array; a nil list is [] (API.md: list
// endpoints never return null).
func writeList[T any](w http.ResponseWriter, items []T) {
	if items == nil {
		items = []T{}
	}
	writeJSON(w, http.StatusOK, items)
}

package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// decodeJSON decodes the request body, limited to maxBody bytes, into dst (a
// pointer to a struct). Unknown fields are tolerated so newer clients keep
// working; wrong types, malformed JSON and trailing data are Invalid errors
// that name the problem. An empty body is Invalid when required, else it
// leaves dst untouched.
func (s *server) decodeJSON(w http.ResponseWriter, r *http.Request, dst any, required bool) error {
	if r.ContentLength > s.maxBody {
		return &http.MaxBytesError{Limit: s.maxBody}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			if required {
				return errs.New(errs.Invalid, "request body is required")
			}
			return nil
		}
		return decodeError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errs.New(errs.Invalid, "request body must contain a single JSON object")
	}
	return nil
}

// decodeError classifies a json.Decoder error.
func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.As(err, &se):
		return errs.New(errs.Invalid, "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errs.New(errs.Invalid, "malformed JSON: unexpected end of body")
	case errors.As(err, &te):
		if te.Field == "" {
			return errs.New(errs.Invalid, "request body must be a JSON object")
		}
		return errs.New(errs.Invalid, "field %q must be %s, not %s", te.Field, jsonKind(te.Type.String()), te.Value)
	default:
		return errs.New(errs.Invalid, "invalid request body")
	}
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case goType == "string", strings.HasSuffix(goType, "Duration"):
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "struct"):
		return "an object"
	default:
		return "of type " + goType
	}
}

// parseDuration parses an optional Go duration string ("30m") for field.
// Empty means zero; negative and unparsable values are Invalid.
func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errs.New(errs.Invalid, "field %q must be a duration like \"30s\" or \"1h\", got %q", field, v)
	}
	if d < 0 {
		return 0, errs.New(errs.Invalid, "field %q must not be negative, got %q", field, v)
	}
	return d, nil
}

// parseMode parses an octal permission string such as "0644" or "755".
func parseMode(field, v string) (uint32, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || v == "" || m > 0o7777 {
		return 0, errs.New(errs.Invalid, "field %q must be octal permission digits like \"0644\", got %q", field, v)
	}
	return uint32(m), nil
}

// validUserID applies the X-User-ID rules (API.md): at most 128 characters,
// no whitespace, control characters, '/' or '\'.
func validUserID(field, v string) error {
	if len(v) > 128 {
		return errs.New(errs.Invalid, "%s must be at most 128 characters", field)
	}
	for _, c := range v {
		if unicode.IsSpace(c) || unicode.IsControl(c) || c == '/' || c == '\\' || c == unicode.ReplacementChar {
			return errs.New(errs.Invalid, "%s must not contain whitespace, control characters, '/' or '\\'", field)
		}
	}
	return nil
}

// queryInt parses an optional positive integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, errs.New(errs.Invalid, "query parameter %q must be a positive integer, got %q", name, v)
	}
	return n, nil
}

// queryRequired returns a query parameter that must be present.
func queryRequired(r *http.Request, name string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return "", errs.New(errs.Invalid, "%s query parameter required", name)
	}
	return v, nil
}

// requireField reports a missing required body field.
func requireField(name, v string) error {
	if v == "" {
		return errs.New(errs.Invalid, "field %q is required", name)
	}
	return nil
}

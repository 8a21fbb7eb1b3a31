// Package errs holds StacyVM's closed set of error classes. Every layer wraps
// failures in one of them; the API maps a class to an HTTP status in exactly
// one place, and the agent protocol carries the class across the wire.
package errs

import (
	"errors"
	"fmt"
)

// Class is the kind of a failure, independent of transport.
type Class int

// The classes. Internal is the zero-value fallback for errors without a class.
const (
	Internal     Class = iota // a bug or an unexpected runtime failure
	Invalid                   // bad input from the caller
	NotFound                  // unknown or destroyed object
	Conflict                  // duplicate name, wrong state, lease held elsewhere
	Unavailable               // runtime, daemon or worker unreachable; draining
	Limit                     // quota, capacity, max ttl, rate limit
	Timeout                   // an operation ran out of time and was stopped
	Forbidden                 // authenticated but not allowed
	Unauthorized              // missing or wrong credentials
	TooLarge                  // body or payload over a configured limit
)

var classCodes = [...]string{
	Internal:     "INTERNAL_ERROR",
	Invalid:      "BAD_REQUEST",
	NotFound:     "NOT_FOUND",
	Conflict:     "CONFLICT",
	Unavailable:  "UNAVAILABLE",
	Limit:        "RESOURCE_LIMIT",
	Timeout:      "TIMEOUT",
	Forbidden:    "FORBIDDEN",
	Unauthorized: "UNAUTHORIZED",
	TooLarge:     "PAYLOAD_TOO_LARGE",
}

// Code is the wire code of the class (API.md), e.g. "NOT_FOUND".
func (c Class) Code() string {
	if c < 0 || int(c) >= len(classCodes) {
		return classCodes[Internal]
	}
	return classCodes[c]
}

// String implements fmt.Stringer.
func (c Class) String() string { return c.Code() }

// ClassFromCode is the inverse of Code; unknown codes map to Internal.
func ClassFromCode(code string) Class {
	for i, s := range classCodes {
		if s == code {
			return Class(i)
		}
	}
	return Internal
}

// Error is a classified error. Msg is safe to show to API callers; Err (the
// cause) is for logs only and never reaches a client.
type Error struct {
	Class Class
	Msg   string
	Err   error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of class c with a caller-safe message.
func New(c Class, format string, args ...any) error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...)}
}

// Wrap classifies err with a caller-safe message; err itself stays internal.
func Wrap(c Class, err error, format string, args ...any) error {
	return &Error{Class: c, Msg: fmt.Sprintf(format, args...), Err: err}
}

// ClassOf returns the class of the outermost classified error in err's chain,
// or Internal when there is none.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Internal
}

// Is reports whether err carries class c.
func Is(err error, c Class) bool { return err != nil && ClassOf(err) == c }

// Message returns the caller-safe text of err: the message of its classified
// error, or a generic text for unclassified (internal) errors.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error"
}

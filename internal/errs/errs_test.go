package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestClass_CodeStatusRoundTrip(t *testing.T) {
	cases := []struct {
		c      Class
		code   string
		status int
	}{
		{Internal, "INTERNAL_ERROR", 500}, {Invalid, "BAD_REQUEST", 400}, {NotFound, "NOT_FOUND", 404},
		{Conflict, "CONFLICT", 409}, {Unavailable, "UNAVAILABLE", 503}, {Limit, "RESOURCE_LIMIT", 429},
		{Timeout, "TIMEOUT", 408}, {Forbidden, "FORBIDDEN", 403}, {Unauthorized, "UNAUTHORIZED", 401},
		{TooLarge, "PAYLOAD_TOO_LARGE", 413},
	}
	for _, c := range cases {
		if c.c.Code() != c.code || c.c.HTTPStatus() != c.status || ClassFromCode(c.code) != c.c {
			t.Errorf("%d: code %q status %d (from code %v), want %q %d", c.c, c.c.Code(), c.c.HTTPStatus(), ClassFromCode(c.code), c.code, c.status)
		}
	}
	if ClassFromCode("NOPE") != Internal || Class(99).Code() != "INTERNAL_ERROR" {
		t.Error("unknown codes and classes must fall back to Internal")
	}
}

func TestClassOf_WrappedAndMessages(t *testing.T) {
	cause := errors.New("dial unix /var/run/x.sock: connection refused")
	err := fmt.Errorf("outer: %w", Wrap(Unavailable, cause, "engine unreachable"))
	if ClassOf(err) != Unavailable || !Is(err, Unavailable) || !errors.Is(err, cause) {
		t.Errorf("class lost through wrapping: %v", err)
	}
	if Message(err) != "engine unreachable" {
		t.Errorf("Message = %q: the cause (with host paths) must not reach callers", Message(err))
	}
	if Message(errors.New("secret detail")) != "internal error" || ClassOf(nil) != Internal || Is(nil, Internal) {
		t.Error("unclassified errors must be internal with a generic message")
	}
}

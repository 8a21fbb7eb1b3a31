package remote_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/remote"
)

// TestSpecAndStatus_RoundTripEveryField fails when provider.Spec or Status
// gains a field the wire types do not carry.
func TestSpecAndStatus_RoundTripEveryField(t *testing.T) {
	spec := provider.Spec{SandboxID: "sb-1", Image: "img", MemoryMB: 1, VCPUs: 0.5, PidsLimit: 2,
		Network: "none", Env: map[string]string{"A": "b"}, Labels: map[string]string{"l": "v"}}
	st := provider.Status{State: provider.RuntimeStopped, StartedAt: time.Unix(1700000000, 0).UTC(), ExitCode: 3, Detail: "exited"}
	for _, v := range []any{spec, st} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				t.Fatalf("test value leaves %T.%s zero: set every field", v, rv.Type().Field(i).Name)
			}
		}
	}
	var gotSpec remote.SpecJSON
	roundTrip(t, remote.SpecToJSON(spec), &gotSpec)
	if diff := cmp.Diff(spec, gotSpec.Spec()); diff != "" {
		t.Errorf("spec changed on the wire (-sent +received):\n%s", diff)
	}
	var gotSt remote.StatusJSON
	roundTrip(t, remote.StatusToJSON(st), &gotSt)
	if diff := cmp.Diff(st, gotSt.Status()); diff != "" {
		t.Errorf("status changed on the wire (-sent +received):\n%s", diff)
	}
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// TestErrors_EveryClassRoundTrips: WriteError then DecodeError gives back
// the class and the caller-safe message, never the internal cause.
func TestErrors_EveryClassRoundTrips(t *testing.T) {
	classes := []errs.Class{errs.Internal, errs.Invalid, errs.NotFound, errs.Conflict, errs.Unavailable,
		errs.Limit, errs.Timeout, errs.Forbidden, errs.Unauthorized, errs.TooLarge}
	for _, c := range classes {
		rec := httptest.NewRecorder()
		remote.WriteError(rec, errs.Wrap(c, secretErr{}, "safe text"))
		err := remote.DecodeError(rec.Result())
		if errs.ClassOf(err) != c || errs.Message(err) != "safe text" || rec.Code != c.HTTPStatus() {
			t.Errorf("class %v: status %d, decoded %v (class %v); want status %d, class %v, message %q",
				c, rec.Code, err, errs.ClassOf(err), c.HTTPStatus(), c, "safe text")
		}
	}
	// A body that is not ours (a proxy's) is classified by its status.
	for status, want := range map[int]errs.Class{http.StatusBadGateway: errs.Unavailable, http.StatusNotFound: errs.NotFound, 418: errs.Internal} {
		rec := httptest.NewRecorder()
		rec.WriteHeader(status)
		rec.WriteString("<html>bad gateway</html>")
		if got := errs.ClassOf(remote.DecodeError(rec.Result())); got != want {
			t.Errorf("status %d without an error body: class %v, want %v", status, got, want)
		}
	}
}

type secretErr struct{}

func (secretErr) Error() string { return "internal cause with a secret" }

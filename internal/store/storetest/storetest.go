// Package storetest is the contract every store.Store implementation passes:
// call Run from the implementation's tests with a function that opens a
// fresh, empty store.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Run runs the contract as subtests. open must return a fresh, empty store
// for each call and arrange for it to be closed (t.Cleanup).
//
// Beyond store.go's doc comments the contract pins down:
//   - times round-trip to at least the microsecond; zero times stay zero;
//   - Create fills a zero CreatedAt with now and a zero UpdatedAt with
//     CreatedAt, on the record passed in;
//   - records read back never have nil Metadata or Env maps;
//   - a cancelled context fails fast with an error that wraps ctx.Err().
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Sandboxes)
	}{
		{"CreateGetRoundTripsEveryField", testRoundTrip},
		{"CreateGetRoundTripsEmptyFields", testRoundTripEmpty},
		{"CreateFillsZeroTimestamps", testCreateFillsTimestamps},
		{"CreateWithoutIDIsInvalid", testCreateWithoutID},
		{"CreateDuplicateIsConflict", testCreateDuplicate},
		{"GetUnknownIsNotFound", testGetUnknown},
		{"UpdatePersistsAndSetsUpdatedAt", testUpdatePersists},
		{"UpdateFnErrorWritesNothing", testUpdateFnError},
		{"UpdateUnknownIsNotFound", testUpdateUnknown},
		{"ListNewestFirstTiesByIDDesc", testListOrder},
		{"ListFilters", testListFilters},
		{"ListPaginationWalksEveryRecordOnce", testListPagination},
		{"CountIgnoresLimitAndCursor", testCount},
		{"PurgeRemovesOnlyDestroyedBefore", testPurge},
		{"ConcurrentUpdatesLoseNothing", testConcurrentUpdates},
		{"CancelledContextFailsFast", testCancelled},
	}
	for _, c := range cases {
		t.Run("Sandboxes/"+c.name, func(t *testing.T) {
			s := open(t)
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping on a fresh store: %v", err)
			}
			c.fn(t, s.Sandboxes())
		})
	}
	runTemplatesAndQuotas(t, open)
}

// at returns a fixed instant plus n minutes. It has microsecond precision,
// the finest every implementation keeps (Postgres timestamptz).
func at(n int) time.Time {
	return time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC).Add(time.Duration(n) * time.Minute)
}

// sandbox returns a fully populated record created at created.
func sandbox(id string, created time.Time) *store.Sandbox {
	return &store.Sandbox{
		ID:        id,
		State:     "running",
		Provider:  "docker",
		Image:     "stacyvm/busybox",
		MemoryMB:  512,
		VCPUs:     1.5,
		Network:   "bridge",
		OwnerID:   "owner-1",
		TenantID:  "tenant-1",
		Metadata:  map[string]string{"team": "core"},
		Env:       map[string]string{"FOO": "bar"},
		Handle:    []byte(`{"container_id":"c-` + id + `"}`),
		CreatedAt: created,
		UpdatedAt: created,
		ExpiresAt: created.Add(time.Hour),
	}
}

// mustCreate creates every record or fails the test.
func mustCreate(t *testing.T, s store.Sandboxes, sbs ...*store.Sandbox) {
	t.Helper()
	for _, sb := range sbs {
		if err := s.Create(t.Context(), sb); err != nil {
			t.Fatalf("Create(%s): %v", sb.ID, err)
		}
	}
}

// mustGet returns the record or fails the test.
func mustGet(t *testing.T, s store.Sandboxes, id string) *store.Sandbox {
	t.Helper()
	sb, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return sb
}

// wantClass fails unless err carries class want.
func wantClass(t *testing.T, what string, err error, want errs.Class) {
	t.Helper()
	if got := errs.ClassOf(err); err == nil || got != want {
		t.Fatalf("%s: got error %v (class %v), want class %v", what, err, got, want)
	}
}

// ids returns the IDs of sbs, in order.
func ids(sbs []*store.Sandbox) []string {
	out := make([]string, 0, len(sbs))
	for _, sb := range sbs {
		out = append(out, sb.ID)
	}
	return out
}

// diffSandbox compares records: times by instant, nil and empty alike.
func diffSandbox(got, want *store.Sandbox) string {
	return cmp.Diff(want, got, cmpopts.EquateEmpty())
}

// id formats a zero-padded test id so lexical and numeric order agree.
func id(prefix string, i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

// withTimeout fails the test if fn does not return within d: a hang is a
// contract violation, not a test timeout ten minutes later.
func withTimeout(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// cancelled returns an already cancelled context.
func cancelled(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

func testRoundTrip(t *testing.T, s store.Sandboxes) {
	want := sandbox("sb-full", at(0))
	want.State = "destroyed"
	want.Metadata = map[string]string{"team": "core", "app.kubernetes.io/name": `we"ird`, "": "empty key"}
	want.Env = map[string]string{"PATH": "/bin", "EMPTY": ""}
	want.Error = "image pull failed"
	want.UpdatedAt = at(1)
	want.ExpiresAt = at(60)
	mustCreate(t, s, want)
	got := mustGet(t, s, want.ID)
	if d := diffSandbox(got, want); d != "" {
		t.Fatalf("Get after Create (-want +got):\n%s", d)
	}
	if !got.DestroyedAt.IsZero() {
		t.Errorf("DestroyedAt = %v, want zero", got.DestroyedAt)
	}

	want.ID, want.DestroyedAt = "sb-destroyed", at(30)
	mustCreate(t, s, want)
	if d := diffSandbox(mustGet(t, s, want.ID), want); d != "" {
		t.Fatalf("Get with DestroyedAt set (-want +got):\n%s", d)
	}
}

func testRoundTripEmpty(t *testing.T, s store.Sandboxes) {
	want := &store.Sandbox{ID: "sb-empty", State: "creating", CreatedAt: at(0), UpdatedAt: at(0)}
	mustCreate(t, s, want)
	got := mustGet(t, s, want.ID)
	if d := diffSandbox(got, want); d != "" {
		t.Fatalf("Get after Create (-want +got):\n%s", d)
	}
	if got.Handle != nil {
		t.Errorf("Handle = %q, want nil", got.Handle)
	}
	if got.Metadata == nil || got.Env == nil {
		t.Errorf("Metadata = %#v, Env = %#v, want non-nil empty maps", got.Metadata, got.Env)
	}
	if !got.ExpiresAt.IsZero() || !got.DestroyedAt.IsZero() {
		t.Errorf("ExpiresAt = %v, DestroyedAt = %v, want both zero", got.ExpiresAt, got.DestroyedAt)
	}
}

func testCreateFillsTimestamps(t *testing.T, s store.Sandboxes) {
	before := time.Now().Add(-time.Second)
	sb := &store.Sandbox{ID: "sb-now", State: "creating"}
	mustCreate(t, s, sb)
	if sb.CreatedAt.Before(before) || !sb.UpdatedAt.Equal(sb.CreatedAt) {
		t.Fatalf("after Create: CreatedAt = %v, UpdatedAt = %v, want now (after %v) and equal", sb.CreatedAt, sb.UpdatedAt, before)
	}
	if got := mustGet(t, s, sb.ID); got.CreatedAt.Sub(sb.CreatedAt).Abs() > time.Microsecond {
		t.Fatalf("stored CreatedAt = %v, want %v", got.CreatedAt, sb.CreatedAt)
	}
}

func testCreateWithoutID(t *testing.T, s store.Sandboxes) {
	wantClass(t, "Create without id", s.Create(t.Context(), &store.Sandbox{State: "creating"}), errs.Invalid)
}

func testCreateDuplicate(t *testing.T, s store.Sandboxes) {
	mustCreate(t, s, sandbox("sb-dup", at(0)))
	dup := sandbox("sb-dup", at(5))
	dup.Image = "other"
	wantClass(t, "second Create", s.Create(t.Context(), dup), errs.Conflict)
	if got := mustGet(t, s, "sb-dup"); got.Image != "stacyvm/busybox" {
		t.Fatalf("Image after failed duplicate = %q, want the original %q", got.Image, "stacyvm/busybox")
	}
}

func testGetUnknown(t *testing.T, s store.Sandboxes) {
	_, err := s.Get(t.Context(), "sb-missing")
	wantClass(t, "Get unknown", err, errs.NotFound)
}

func testUpdatePersists(t *testing.T, s store.Sandboxes) {
	mustCreate(t, s, sandbox("sb-up", at(0)))
	got, err := s.Update(t.Context(), "sb-up", func(sb *store.Sandbox) error {
		sb.State = "destroyed"
		sb.Metadata["k"] = "v"
		sb.Handle = nil
		sb.DestroyedAt = at(10)
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !got.UpdatedAt.After(at(0)) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("UpdatedAt = %v, want now (after the old %v)", got.UpdatedAt, at(0))
	}
	want := sandbox("sb-up", at(0))
	want.State, want.Handle, want.DestroyedAt, want.UpdatedAt = "destroyed", nil, at(10), got.UpdatedAt
	want.Metadata["k"] = "v"
	if d := diffSandbox(got, want); d != "" {
		t.Errorf("Update result (-want +got):\n%s", d)
	}
	stored := mustGet(t, s, "sb-up")
	closeTimes := cmp.Comparer(func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Microsecond })
	if d := cmp.Diff(want, stored, closeTimes, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Get after Update (-want +got):\n%s", d)
	}
}

func testUpdateFnError(t *testing.T, s store.Sandboxes) {
	want := sandbox("sb-keep", at(0))
	mustCreate(t, s, want)
	boom := errors.New("boom")
	_, err := s.Update(t.Context(), "sb-keep", func(sb *store.Sandbox) error {
		sb.State = "error"
		sb.Metadata["touched"] = "yes"
		return boom
	})
	if err != boom { //nolint:errorlint // the contract is "unchanged", not "wrapped"
		t.Fatalf("Update error = %v, want fn's error returned unchanged", err)
	}
	if d := diffSandbox(mustGet(t, s, "sb-keep"), want); d != "" {
		t.Fatalf("record after failed Update (-want +got):\n%s", d)
	}
}

func testUpdateUnknown(t *testing.T, s store.Sandboxes) {
	called := false
	_, err := s.Update(t.Context(), "sb-missing", func(*store.Sandbox) error { called = true; return nil })
	wantClass(t, "Update unknown", err, errs.NotFound)
	if called {
		t.Errorf("fn was called for an unknown id")
	}
}

func testListOrder(t *testing.T, s store.Sandboxes) {
	// Created out of order, with a tie on CreatedAt broken by id desc.
	mustCreate(t, s, sandbox("b", at(2)), sandbox("a", at(3)), sandbox("d", at(1)), sandbox("c", at(2)))
	got, err := s.List(t.Context(), store.SandboxFilter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if d := cmp.Diff([]string{"a", "c", "b", "d"}, ids(got)); d != "" {
		t.Fatalf("List order (-want +got):\n%s", d)
	}
}

// fixture creates six records that the filter tests select from; f-05 is
// the newest.
func fixture(t *testing.T, s store.Sandboxes) {
	t.Helper()
	for i := range 6 {
		sb := sandbox(id("f", i), at(i))
		sb.State = []string{"running", "stopped", "destroyed"}[i%3]
		sb.OwnerID = "owner-" + strconv.Itoa(i%2)
		sb.TenantID = "tenant-" + strconv.Itoa(i/3)
		sb.Provider = []string{"docker", "vm"}[i%2]
		sb.Metadata = map[string]string{"team": []string{"core", "web"}[i/4], "n": strconv.Itoa(i)}
		sb.ExpiresAt = at(100 + 10*i)
		if i == 5 {
			sb.ExpiresAt = time.Time{} // never expires
		}
		mustCreate(t, s, sb)
	}
}

// filterCase is a filter and, newest first, what it selects from fixture.
type filterCase struct {
	name string
	f    store.SandboxFilter
	want []string
}

func filterCases() []filterCase {
	return []filterCase{
		{"none", store.SandboxFilter{}, []string{"f-05", "f-04", "f-03", "f-02", "f-01", "f-00"}},
		{"one state", store.SandboxFilter{States: []string{"stopped"}}, []string{"f-04", "f-01"}},
		{"any of states", store.SandboxFilter{States: []string{"running", "destroyed"}}, []string{"f-05", "f-03", "f-02", "f-00"}},
		{"owner", store.SandboxFilter{OwnerID: "owner-1"}, []string{"f-05", "f-03", "f-01"}},
		{"tenant", store.SandboxFilter{TenantID: "tenant-1"}, []string{"f-05", "f-04", "f-03"}},
		{"provider", store.SandboxFilter{Provider: "docker"}, []string{"f-04", "f-02", "f-00"}},
		{"one label", store.SandboxFilter{Labels: map[string]string{"team": "web"}}, []string{"f-05", "f-04"}},
		{"all labels must match", store.SandboxFilter{Labels: map[string]string{"team": "web", "n": "4"}}, []string{"f-04"}},
		{"label value mismatch", store.SandboxFilter{Labels: map[string]string{"team": "ops"}}, nil},
		{"label key missing", store.SandboxFilter{Labels: map[string]string{"nope": ""}}, nil},
		{"expired before", store.SandboxFilter{ExpiredBefore: at(125)}, []string{"f-02", "f-01", "f-00"}},
		{"expired before skips never-expiring", store.SandboxFilter{ExpiredBefore: at(100000)}, []string{"f-04", "f-03", "f-02", "f-01", "f-00"}},
		{"unknown owner", store.SandboxFilter{OwnerID: "nobody"}, nil},
		{"combined", store.SandboxFilter{
			States: []string{"running", "stopped"}, OwnerID: "owner-0", TenantID: "tenant-0",
			Provider: "docker", Labels: map[string]string{"team": "core"}, ExpiredBefore: at(200),
		}, []string{"f-00"}},
		{"combined with limit", store.SandboxFilter{TenantID: "tenant-0", Limit: 2}, []string{"f-02", "f-01"}},
	}
}

func testListFilters(t *testing.T, s store.Sandboxes) {
	fixture(t, s)
	for _, c := range filterCases() {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.List(t.Context(), c.f)
			if err != nil {
				t.Fatalf("List(%+v): %v", c.f, err)
			}
			if d := cmp.Diff(c.want, ids(got), cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("List(%+v) (-want +got):\n%s", c.f, d)
			}
		})
	}
}

func testCount(t *testing.T, s store.Sandboxes) {
	fixture(t, s)
	for _, c := range filterCases() {
		t.Run(c.name, func(t *testing.T) {
			f := c.f
			f.Limit, f.Cursor = 1, "f-05"
			want := len(c.want)
			if c.f.Limit > 0 { // the expectation was limited; count what the filter selects
				all := c.f
				all.Limit = 0
				l, err := s.List(t.Context(), all)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				want = len(l)
			}
			got, err := s.Count(t.Context(), f)
			if err != nil || got != want {
				t.Fatalf("Count(%+v) = %d, %v; want %d, nil", f, got, err, want)
			}
		})
	}
}

func testListPagination(t *testing.T, s store.Sandboxes) {
	// Ten records, pairs sharing a CreatedAt, so the cursor must break ties.
	for i := range 10 {
		mustCreate(t, s, sandbox(id("p", i), at(i/2)))
	}
	all, err := s.List(t.Context(), store.SandboxFilter{})
	if err != nil || len(all) != 10 {
		t.Fatalf("List all = %d records, %v; want 10, nil", len(all), err)
	}
	var walked []string
	var sizes []int
	f := store.SandboxFilter{Limit: 3}
	for range 10 { // bounded: a broken cursor must not loop forever
		page, err := s.List(t.Context(), f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if len(page) == 0 {
			break
		}
		sizes = append(sizes, len(page))
		walked = append(walked, ids(page)...)
		f.Cursor = page[len(page)-1].ID
	}
	if d := cmp.Diff(ids(all), walked); d != "" {
		t.Errorf("pages walked (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{3, 3, 3, 1}, sizes); d != "" {
		t.Errorf("page sizes (-want +got):\n%s", d)
	}
}

func testPurge(t *testing.T, s store.Sandboxes) {
	for i, destroyed := range []time.Time{at(10), at(20), at(30), {}} {
		sb := sandbox(id("g", i), at(i))
		if !destroyed.IsZero() {
			sb.State, sb.DestroyedAt = "destroyed", destroyed
		}
		mustCreate(t, s, sb)
	}
	n, err := s.Purge(t.Context(), at(25))
	if err != nil || n != 2 {
		t.Fatalf("Purge(at 25) = %d, %v; want 2, nil", n, err)
	}
	left, err := s.List(t.Context(), store.SandboxFilter{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if d := cmp.Diff([]string{"g-03", "g-02"}, ids(left)); d != "" {
		t.Fatalf("left after Purge (-want +got):\n%s", d)
	}
	if n, err := s.Purge(t.Context(), at(25)); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v; want 0, nil", n, err)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Sandboxes) {
	const workers = 20
	mustCreate(t, s, sandbox("sb-counter", at(0)))
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			_, err := s.Update(t.Context(), "sb-counter", func(sb *store.Sandbox) error {
				n, _ := strconv.Atoi(sb.Metadata["counter"])
				sb.Metadata["counter"] = strconv.Itoa(n + 1)
				return nil
			})
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Errorf("concurrent Update: %v", err)
		}
	}
	if got := mustGet(t, s, "sb-counter").Metadata["counter"]; got != strconv.Itoa(workers) {
		t.Fatalf("counter = %q after %d concurrent increments, want %d", got, workers, workers)
	}
}

func testCancelled(t *testing.T, s store.Sandboxes) {
	mustCreate(t, s, sandbox("sb-ctx", at(0)))
	ctx := cancelled(t)
	calls := map[string]func() error{
		"Create": func() error { return s.Create(ctx, sandbox("sb-ctx-2", at(1))) },
		"Get":    func() error { _, err := s.Get(ctx, "sb-ctx"); return err },
		"Update": func() error {
			_, err := s.Update(ctx, "sb-ctx", func(*store.Sandbox) error { return nil })
			return err
		},
		"List":  func() error { _, err := s.List(ctx, store.SandboxFilter{}); return err },
		"Count": func() error { _, err := s.Count(ctx, store.SandboxFilter{}); return err },
		"Purge": func() error { _, err := s.Purge(ctx, at(100)); return err },
	}
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		withTimeout(t, 5*time.Second, name, func() {
			if err := calls[name](); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with cancelled context: got %v, want an error wrapping context.Canceled", name, err)
			}
		})
	}
	if _, err := s.Get(t.Context(), "sb-ctx-2"); !errs.Is(err, errs.NotFound) {
		t.Errorf("Get of a record created with a cancelled context: got %v, want NotFound", err)
	}
}

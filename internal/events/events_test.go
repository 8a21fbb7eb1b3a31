package events

import (
	"testing"
)

func ids(evs []Event) []uint64 {
	out := []uint64{}
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestBus_ResumeFromRing(t *testing.T) {
	b := NewBus(4)
	for range 3 {
		b.Publish(SandboxCreated, map[string]string{"id": "sb-1"})
	}
	s := b.Subscribe(1)
	defer s.Close()
	if s.Reset {
		t.Fatal("Reset for an id still in the ring")
	}
	if got := ids(s.Backlog); len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("backlog = %v, want [2 3]", got)
	}
	b.Publish(SandboxRunning, nil)
	if ev := <-s.C(); ev.ID != 4 || ev.Type != SandboxRunning {
		t.Fatalf("live event = %+v, want id 4 sandbox.running", ev)
	}
}

func TestBus_OldIDResets(t *testing.T) {
	b := NewBus(4)
	for range 10 {
		b.Publish(ExecStarted, nil)
	}
	s := b.Subscribe(2) // ring holds 7..10
	defer s.Close()
	if !s.Reset {
		t.Fatal("no Reset for an id older than the ring")
	}
	if got := ids(s.Backlog); len(got) != 4 || got[0] != 7 {
		t.Fatalf("backlog = %v, want 7..10", got)
	}
	// Exactly at the edge (id 6, next is 7 = oldest): no gap, no reset.
	s2 := b.Subscribe(6)
	defer s2.Close()
	if s2.Reset || len(s2.Backlog) != 4 {
		t.Fatalf("edge: reset=%v backlog=%v", s2.Reset, ids(s2.Backlog))
	}
	// An id this bus never issued (previous process life).
	s3 := b.Subscribe(99)
	defer s3.Close()
	if !s3.Reset || len(s3.Backlog) != 0 {
		t.Fatalf("future id: reset=%v backlog=%v", s3.Reset, ids(s3.Backlog))
	}
}

func TestBus_SlowSubscriberDroppedNotBlocking(t *testing.T) {
	b := NewBus(8)
	s := b.Subscribe(0)
	for range subscriberBuffer + 10 {
		b.Publish(ExecFinished, nil) // must not block
	}
	if !s.Dropped() {
		t.Fatal("slow subscriber was not dropped")
	}
	n := 0
	for range s.C() {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("drained %d events, want %d", n, subscriberBuffer)
	}
	s.Close() // idempotent after the bus closed it
}

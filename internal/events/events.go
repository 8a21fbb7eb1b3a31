// Package events is StacyVM's in-memory lifecycle event bus: a bounded ring
// of typed events with increasing ids, fanned out to live subscribers. A
// subscriber that reconnects with the last id it saw gets the events it
// missed, as long as they are still in the ring; an id older than the ring
// gets an explicit reset instead of a silent gap.
package events

import (
	"encoding/json"
	"sync"
	"time"
)

// Event types published by the sandbox service.
const (
	SandboxCreated   = "sandbox.created"
	SandboxRunning   = "sandbox.running"
	SandboxDestroyed = "sandbox.destroyed"
	SandboxExpired   = "sandbox.expired"
	SandboxError     = "sandbox.error"
	ExecStarted      = "exec.started"
	ExecFinished     = "exec.finished"
)

// DefaultRingSize is how many recent events a Bus keeps for resumption.
const DefaultRingSize = 1024

// subscriberBuffer is how many events a slow subscriber may lag behind
// before it is dropped (it then reconnects with Last-Event-ID).
const subscriberBuffer = 256

// Event is one lifecycle event. ID increases by one per event for the life
// of the process; Data is the type's JSON payload.
type Event struct {
	ID   uint64          `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Data json.RawMessage `json:"data"`
}

// Bus keeps the last events in a ring and delivers new ones to subscribers.
// It is safe for concurrent use; Publish never blocks on a subscriber.
type Bus struct {
	mu     sync.Mutex
	ring   []Event // circular, len == cap once full
	size   int
	start  int // index of the oldest event in ring
	nextID uint64
	subs   map[*Subscription]struct{}
	now    func() time.Time
}

// NewBus returns a bus keeping the last size events (DefaultRingSize if
// size <= 0).
func NewBus(size int) *Bus {
	if size <= 0 {
		size = DefaultRingSize
	}
	return &Bus{size: size, nextID: 1, subs: map[*Subscription]struct{}{}, now: time.Now}
}

// Publish records an event of type typ with data marshalled to JSON and
// delivers it to every subscriber. A subscriber whose buffer is full is
// closed (Dropped reports it) rather than blocking the publisher.
func (b *Bus) Publish(typ string, data any) Event {
	raw, err := json.Marshal(data)
	if err != nil {
		raw = []byte(`{}`)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ev := Event{ID: b.nextID, Type: typ, Time: b.now().UTC(), Data: raw}
	b.nextID++
	if len(b.ring) < b.size {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.start] = ev
		b.start = (b.start + 1) % b.size
	}
	for s := range b.subs {
		select {
		case s.c <- ev:
		default:
			s.dropped = true
			delete(b.subs, s)
			close(s.c)
		}
	}
	return ev
}

// Subscription is a live feed of events. Read C until it is closed; call
// Close when done.
type Subscription struct {
	b       *Bus
	c       chan Event
	dropped bool
	// Backlog are the events after the requested id still in the ring, to
	// be sent before anything from C.
	Backlog []Event
	// Reset is true when the requested id is older than the ring (or from
	// another process life): events were missed and the client must
	// re-read state.
	Reset bool
}

// C delivers events published after Subscribe returned.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped reports whether the bus closed C because the subscriber fell
// more than its buffer behind.
func (s *Subscription) Dropped() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.dropped
}

// Close ends the subscription; it is idempotent.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if _, ok := s.b.subs[s]; ok {
		delete(s.b.subs, s)
		close(s.c)
	}
}

// Subscribe starts a feed. With after == 0 only new events are delivered;
// otherwise the events with id > after still in the ring are the Backlog,
// and Reset is set when some of them are gone (after is older than the
// oldest kept event, or newer than any event this bus published).
func (b *Bus) Subscribe(after uint64) *Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := &Subscription{b: b, c: make(chan Event, subscriberBuffer)}
	b.subs[s] = struct{}{}
	if after == 0 {
		return s
	}
	last := b.nextID - 1
	if after > last {
		s.Reset = true // an id from a previous process life
		return s
	}
	oldest := last + 1
	if len(b.ring) > 0 {
		oldest = b.ring[b.start].ID
	}
	if after+1 < oldest {
		s.Reset = true
	}
	for i := range len(b.ring) {
		ev := b.ring[(b.start+i)%len(b.ring)]
		if ev.ID > after {
			s.Backlog = append(s.Backlog, ev)
		}
	}
	return s
}

// LastID returns the id of the newest event, 0 when none was published.
func (b *Bus) LastID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextID - 1
}

// Subscribers returns how many subscriptions are open.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Size returns the ring's capacity.
func (b *Bus) Size() int { return b.size }

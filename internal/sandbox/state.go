package sandbox

import (
	"fmt"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// State is a sandbox's lifecycle state (API.md).
type State string

// The states. Only creating, running, error, expired and destroyed are
// entered by this server today; paused, stopped and unhealthy are part of the
// wire contract and reserved for providers that support them.
const (
	StateCreating  State = "creating"
	StateRunning   State = "running"
	StatePaused    State = "paused"
	StateStopped   State = "stopped"
	StateUnhealthy State = "unhealthy"
	StateExpired   State = "expired"
	StateDestroyed State = "destroyed"
	StateError     State = "error"
	// StateWarm is internal: a ready sandbox in a warm pool, invisible to
	// callers until a create claims it (it then becomes running).
	StateWarm State = "warm"
)

// transitions is the allowed-transitions table. Destroyed is terminal.
var transitions = map[State][]State{
	StateCreating:  {StateRunning, StateWarm, StateError, StateDestroyed},
	StateWarm:      {StateRunning, StateExpired, StateError, StateDestroyed},
	StateRunning:   {StatePaused, StateStopped, StateUnhealthy, StateExpired, StateError, StateDestroyed},
	StatePaused:    {StateRunning, StateStopped, StateExpired, StateError, StateDestroyed},
	StateStopped:   {StateRunning, StateExpired, StateError, StateDestroyed},
	StateUnhealthy: {StateRunning, StateStopped, StateExpired, StateError, StateDestroyed},
	StateExpired:   {StateDestroyed, StateError},
	StateError:     {StateDestroyed},
	StateDestroyed: nil,
}

// CanTransition reports whether from → to is allowed.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// checkTransition returns a Conflict error for a forbidden transition.
func checkTransition(id string, from, to State) error {
	if from == to || CanTransition(from, to) {
		return nil
	}
	return errs.New(errs.Conflict, "sandbox %s is %s; cannot become %s", id, from, to)
}

// Live reports whether a sandbox in state s still holds (or may hold) a runtime.
func (s State) Live() bool { return s != StateDestroyed }

// Valid reports whether s is one of the known states.
func (s State) Valid() bool { _, ok := transitions[s]; return ok }

// ParseState validates a state name from user input.
func ParseState(v string) (State, error) {
	s := State(v)
	if !s.Valid() || s == StateWarm {
		return "", errs.New(errs.Invalid, "unknown state %q", v)
	}
	return s, nil
}

func (s State) String() string { return string(s) }

var _ fmt.Stringer = StateRunning

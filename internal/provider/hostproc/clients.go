package hostproc

import (
	"os"
	"sync"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// Clients caches one agent client per sandbox id. Safe for concurrent use;
// the zero value is ready.
type Clients struct {
	mu sync.Mutex
	m  map[string]*agent.Client
}

// Put caches c for id, closing a client it replaces.
func (cs *Clients) Put(id string, c *agent.Client) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*agent.Client{}
	}
	if old := cs.m[id]; old != nil && old != c {
		old.Close()
	}
	cs.m[id] = c
}

// Drop forgets id's client and closes it.
func (cs *Clients) Drop(id string) {
	cs.mu.Lock()
	c := cs.m[id]
	delete(cs.m, id)
	cs.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// CloseAll closes and forgets every cached client.
func (cs *Clients) CloseAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for id, c := range cs.m {
		c.Close()
		delete(cs.m, id)
	}
}

// Unix returns the cached client of id, or a new one on the agent socket
// sock; NotFound when the socket does not exist (the sandbox is gone).
func (cs *Clients) Unix(id, sock string) (*agent.Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c := cs.m[id]; c != nil {
		return c, nil
	}
	if _, err := os.Stat(sock); err != nil {
		return nil, errs.Wrap(errs.NotFound, err, "sandbox %s has no agent socket", id)
	}
	if cs.m == nil {
		cs.m = map[string]*agent.Client{}
	}
	c := agent.NewUnixClient(sock)
	cs.m[id] = c
	return c, nil
}

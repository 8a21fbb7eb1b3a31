package bench

import "context"

// contenders are the sandboxes one comparison runs against: ours, an
// equivalent baseline container, and the peer's (empty without --peer, or
// when its spawn failed, which is noted in the section).
type contenders struct {
	ours, baseline, peer string
}

// spawnContenders makes the contenders (the peer only when withPeer) and returns a cleanup that removes
// them all; on error nothing is left behind.
func (e *Env) spawnContenders(ctx context.Context, sec *Section, withPeer bool) (contenders, func(), error) {
	var c contenders
	var undo []func()
	cleanup := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	var err error
	if c.ours, err = e.Ours.Spawn(ctx); err != nil {
		return c, cleanup, err
	}
	undo = append(undo, func() { destroyAll(ctx, e.Ours, []string{c.ours}, 1) })
	if c.baseline, err = e.Docker.RunCLI(ctx); err != nil {
		cleanup()
		return c, func() {}, err
	}
	undo = append(undo, func() { e.Docker.Remove(ctx, c.baseline) })
	if withPeer && e.Peer != nil {
		if c.peer, err = e.Peer.Spawn(ctx); err != nil {
			sec.note("peer spawn failed: %v", err)
			c.peer = ""
		} else {
			undo = append(undo, func() { destroyAll(ctx, e.Peer, []string{c.peer}, 1) })
		}
	}
	return c, cleanup, nil
}

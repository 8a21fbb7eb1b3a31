package agent

import (
	"context"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestNewestJobGroup_AgreesWithTheTerminal checks the fallback used where
// TIOCGPGRP on the master is refused (gVisor) against the kernel's answer
// here: with a job running under an interactive shell, both name the job's
// group, not the shell's.
func TestNewestJobGroup_AgreesWithTheTerminal(t *testing.T) {
	s, err := NewServer(ServerOptions{Root: "/", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.startChild(ProcessSpec{ExecRequest: ExecRequest{Argv: []string{"/bin/sh", "-i"}}, TTY: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	pumped := c.pump(func(byte, []byte) error { return nil })
	defer func() {
		c.kill()
		c.finish(context.Background(), 0, pumped)
	}()
	if err := c.writeStdin(context.Background(), []byte("sleep 100\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var fg int32
		if err := ioctlFile(c.tty, syscall.TIOCGPGRP, unsafe.Pointer(&fg)); err != nil {
			t.Skipf("TIOCGPGRP on the master: %v", err)
		}
		guess := newestJobGroup(c.pid)
		if int(fg) != c.pid && guess == int(fg) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("foreground group %d, guess %d (shell %d)", fg, guess, c.pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// lingerOnTerm is how long init waits, after forwarding SIGTERM/SIGINT, for
// the server child before exiting anyway. PID 1 exiting makes the kernel
// kill everything left in the namespace, so `docker stop` is fast.
const lingerOnTerm = 100 * time.Millisecond

// runInit is PID 1: it starts the real server as a child (so reaping here
// never steals the exit status the server's own cmd.Wait is waiting for),
// reaps every zombie, forwards signals, and exits with the child's status.
func runInit(args []string) int {
	sigs := make(chan os.Signal, 32)
	// Notify before the child exists so its SIGCHLD cannot be missed.
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	cmd := exec.Command("/proc/self/exe", args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent init: start server:", err)
		return 1
	}
	child := cmd.Process.Pid

	var deadline <-chan time.Time
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGCHLD {
				if code, exited := reap(child); exited {
					return code
				}
				continue
			}
			syscall.Kill(child, sig.(syscall.Signal))
			if sig != syscall.SIGHUP && deadline == nil {
				deadline = time.After(lingerOnTerm)
			}
		case <-deadline:
			fmt.Fprintln(os.Stderr, "stacyvm-agent init: server did not stop in time; exiting")
			return 128 + int(syscall.SIGTERM)
		}
	}
}

// reap collects every exited process (SIGCHLDs coalesce, so one signal may
// stand for many) and reports the server child's exit code if it was one.
func reap(child int) (code int, exited bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, exited
		}
		if pid == child {
			exited = true
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			}
		}
	}
}

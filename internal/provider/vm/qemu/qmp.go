package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmp runs one QMP command on a fresh connection to the monitor socket:
// read the greeting, negotiate capabilities, execute, and return the
// command's "return" value (asynchronous events in between are skipped).
// QMP is line-delimited JSON, so the standard library is all it takes.
func qmp(ctx context.Context, socket, command string, args any) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReader(conn)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := readJSON(r, &greeting); err != nil || greeting.QMP == nil {
		return nil, fmt.Errorf("qmp greeting: %v", err)
	}
	if _, err := call(conn, r, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return call(conn, r, command, args)
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

func call(conn net.Conn, r *bufio.Reader, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	for {
		var rep qmpReply
		if err := readJSON(r, &rep); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
		switch {
		case rep.Event != "":
			continue
		case rep.Error != nil:
			return nil, fmt.Errorf("qmp %s: %s: %s", command, rep.Error.Class, rep.Error.Desc)
		default:
			return rep.Return, nil
		}
	}
}

func readJSON(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}

// Status is QEMU's run state ("running", "paused", "shutdown", ...).
func Status(ctx context.Context, socket string) (string, error) {
	raw, err := qmp(ctx, socket, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", err
	}
	return st.Status, nil
}

package firecracker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

// fakeAPI is a Firecracker API server on a unix socket that validates
// every request the way Firecracker's OpenAPI document (firecracker.yaml)
// specifies it: method, path, JSON content type, known fields only,
// required fields present, and the ordering rule that configuration comes
// before InstanceStart.
type fakeAPI struct {
	mu      sync.Mutex
	calls   []string // "METHOD /path"
	bodies  map[string]map[string]any
	started bool
	fail    map[string]int // path -> status to answer
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.Method + " " + r.URL.Path
	f.calls = append(f.calls, key)
	fault := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"fault_message": msg})
	}
	if st := f.fail[r.URL.Path]; st != 0 {
		fault(st, "scripted failure")
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == "/" {
		state := "Not started"
		if f.started {
			state = "Running"
		}
		json.NewEncoder(w).Encode(InstanceInfo{ID: "sb-test", State: state, VMMVersion: "1.10.1", AppName: "Firecracker"})
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		fault(400, "want application/json")
		return
	}
	var body map[string]any
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&body); err != nil {
		fault(400, "bad json: "+err.Error())
		return
	}
	schema := map[string]struct {
		method   string
		required []string
		allowed  []string
	}{
		"/boot-source":             {"PUT", []string{"kernel_image_path"}, []string{"kernel_image_path", "initrd_path", "boot_args"}},
		"/drives/rootfs":           {"PUT", []string{"drive_id", "path_on_host", "is_root_device", "is_read_only"}, []string{"drive_id", "path_on_host", "is_root_device", "is_read_only"}},
		"/machine-config":          {"PUT", []string{"vcpu_count", "mem_size_mib"}, []string{"vcpu_count", "mem_size_mib", "smt"}},
		"/vsock":                   {"PUT", []string{"guest_cid", "uds_path"}, []string{"guest_cid", "uds_path"}},
		"/actions":                 {"PUT", []string{"action_type"}, []string{"action_type"}},
		"/vm":                      {"PATCH", []string{"state"}, []string{"state"}},
		"/snapshot/create":         {"PUT", []string{"snapshot_path", "mem_file_path"}, []string{"snapshot_type", "snapshot_path", "mem_file_path"}},
		"/snapshot/load":           {"PUT", []string{"snapshot_path", "mem_backend"}, []string{"snapshot_path", "mem_backend", "enable_diff_snapshots", "resume_vm"}},
		"/network-interfaces/eth0": {"PUT", []string{"iface_id", "host_dev_name"}, []string{"iface_id", "host_dev_name", "guest_mac"}},
	}
	s, ok := schema[r.URL.Path]
	if !ok || s.method != r.Method {
		fault(400, "invalid request: "+key)
		return
	}
	for _, k := range s.required {
		if _, ok := body[k]; !ok {
			fault(400, "missing field "+k)
			return
		}
	}
	for k := range body {
		if !contains(s.allowed, k) {
			fault(400, "unknown field "+k)
			return
		}
	}
	isConfig := r.URL.Path != "/actions" && r.URL.Path != "/vm" && !strings.HasPrefix(r.URL.Path, "/snapshot/")
	if isConfig && f.started {
		fault(400, "The requested operation is not supported after starting the microVM.")
		return
	}
	if r.URL.Path == "/actions" && body["action_type"] == "InstanceStart" {
		if f.bodies["/boot-source"] == nil {
			fault(400, "Cannot start microvm without kernel configuration.")
			return
		}
		f.started = true
	}
	if f.bodies == nil {
		f.bodies = map[string]map[string]any{}
	}
	f.bodies[r.URL.Path] = body
	w.WriteHeader(http.StatusNoContent)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func serveFake(t *testing.T) (*fakeAPI, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{fail: map[string]int{}}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return f, sock
}

func TestConfigure_SendsTheBootSequence(t *testing.T) {
	f, sock := serveFake(t)
	spec := vmm.Spec{ID: "sb-1", Dir: "/srv/vm/sb-1", Kernel: "/k/vmlinux", Initrd: "/k/initrd", Cmdline: "console=ttyS0",
		RootDisk: "/srv/vm/sb-1/disk.raw", DiskFormat: "raw", MemoryMB: 256, VCPUs: 2, Accel: vmm.AccelKVM}
	if err := Configure(context.Background(), NewClient(sock), spec); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	want := []string{"PUT /boot-source", "PUT /drives/rootfs", "PUT /machine-config", "PUT /vsock", "PUT /actions"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls = %v, want %v", f.calls, want)
	}
	checks := map[string]map[string]any{
		"/boot-source":    {"kernel_image_path": "/k/vmlinux", "initrd_path": "/k/initrd", "boot_args": "console=ttyS0"},
		"/drives/rootfs":  {"drive_id": "rootfs", "path_on_host": "/srv/vm/sb-1/disk.raw", "is_read_only": false},
		"/machine-config": {"vcpu_count": 2.0, "mem_size_mib": 256.0},
		"/vsock":          {"guest_cid": 3.0, "uds_path": "/srv/vm/sb-1/vsock.sock"},
		"/actions":        {"action_type": "InstanceStart"},
	}
	for path, fields := range checks {
		for k, v := range fields {
			if got := f.bodies[path][k]; got != v {
				t.Errorf("%s %s = %v, want %v", path, k, got, v)
			}
		}
	}
}

func TestConfigure_RefusesWhatFirecrackerCannotDo(t *testing.T) {
	_, sock := serveFake(t)
	c := NewClient(sock)
	base := vmm.Spec{ID: "x", Dir: "/d", Kernel: "/k", RootDisk: "/r", Accel: vmm.AccelKVM}
	for name, mod := range map[string]func(*vmm.Spec){
		"tcg":   func(s *vmm.Spec) { s.Accel = vmm.AccelTCG },
		"qcow2": func(s *vmm.Spec) { s.DiskFormat = "qcow2" },
		"user":  func(s *vmm.Spec) { s.Network = vmm.NetworkUser },
	} {
		s := base
		mod(&s)
		if err := Configure(context.Background(), c, s); err == nil {
			t.Errorf("%s: Configure succeeded", name)
		}
	}
}

func TestClient_ErrorsCarryFaultMessage(t *testing.T) {
	f, sock := serveFake(t)
	f.fail["/machine-config"] = 400
	err := NewClient(sock).PutMachineConfig(context.Background(), MachineConfig{VCPUCount: 1, MemSizeMiB: 128})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Fault != "scripted failure" || ae.Path != "/machine-config" {
		t.Fatalf("err = %#v, want APIError 400 with the fault message", err)
	}
}

func TestClient_SnapshotAndPauseShapes(t *testing.T) {
	f, sock := serveFake(t)
	c := NewClient(sock)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.PutNetworkInterface(ctx, NetworkInterface{IfaceID: "eth0", HostDevName: "tap0", GuestMAC: "06:00:00:00:00:01"}))
	must(c.PutBootSource(ctx, BootSource{KernelImagePath: "/k"}))
	must(c.Action(ctx, "InstanceStart"))
	must(c.SetVMState(ctx, "Paused"))
	must(c.CreateSnapshot(ctx, SnapshotCreate{SnapshotType: "Full", SnapshotPath: "/s/vm.snap", MemFilePath: "/s/vm.mem"}))
	must(c.SetVMState(ctx, "Resumed"))
	must(c.LoadSnapshot(ctx, SnapshotLoad{SnapshotPath: "/s/vm.snap", MemBackend: MemBackend{BackendType: "File", BackendPath: "/s/vm.mem"}, ResumeVM: true}))
	info, err := c.Describe(ctx)
	must(err)
	if info.State != "Running" || info.AppName != "Firecracker" {
		t.Errorf("Describe = %+v", info)
	}
	if got := f.bodies["/snapshot/load"]["mem_backend"].(map[string]any)["backend_type"]; got != "File" {
		t.Errorf("snapshot load mem_backend.backend_type = %v", got)
	}
	if got := f.bodies["/vm"]["state"]; got != "Resumed" {
		t.Errorf("last PATCH /vm state = %v", got)
	}
	// Configuration after start is refused, as Firecracker does.
	if err := c.PutMachineConfig(ctx, MachineConfig{VCPUCount: 1, MemSizeMiB: 128}); err == nil {
		t.Error("machine-config after InstanceStart accepted")
	}
}

func TestDialVsock_Handshake(t *testing.T) {
	dir, _ := os.MkdirTemp("", "fcv-")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "v.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // Firecracker's side: accept CONNECT 1024, refuse others
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				if line != fmt.Sprintf("CONNECT %d\n", AgentPort) {
					return // Firecracker closes on an unknown port
				}
				io.WriteString(c, "OK 1073741824\nhello")
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialVsock(ctx, sock, AgentPort)
	if err != nil {
		t.Fatalf("DialVsock: %v", err)
	}
	b, _ := io.ReadAll(c)
	if string(b) != "hello" {
		t.Errorf("stream after handshake = %q, want %q", b, "hello")
	}
	c.Close()
	if _, err := DialVsock(ctx, sock, 7); err == nil {
		t.Error("DialVsock to a closed port succeeded")
	}
}

func TestJailerArgs(t *testing.T) {
	j := Jailer{UID: 1000, GID: 1000, ChrootBase: "/srv/jailer", CgroupV2: true, NewPIDNS: true}
	got := strings.Join(j.Args("sb-1", "/usr/bin/firecracker", []string{"--api-sock", "/run/firecracker.sock"}), " ")
	want := "--id sb-1 --exec-file /usr/bin/firecracker --uid 1000 --gid 1000 --chroot-base-dir /srv/jailer --cgroup-version 2 --new-pid-ns -- --api-sock /run/firecracker.sock"
	if got != want {
		t.Errorf("jailer args =\n%s\nwant\n%s", got, want)
	}
}

func TestBoot_NotInstalled(t *testing.T) {
	v := New("/nonexistent/firecracker", nil)
	_, err := v.Boot(context.Background(), vmm.Spec{ID: "x", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("Boot without firecracker = %v, want a not-installed error", err)
	}
}

// Package firecracker is the Firecracker backend of the VMM layer, written
// against Firecracker's REST API on its unix socket with a thin net/http
// client (the official Go SDK has had no release since 2022 and pulls a
// large dependency tree; the API is a dozen PUT/PATCH calls). The agent
// channel is virtio-vsock: Firecracker exposes the guest's vsock ports on a
// host unix socket with a "CONNECT <port>" handshake, so every dial is an
// independent stream and no multiplexer is needed.
package firecracker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client calls one Firecracker process's API socket.
type Client struct {
	hc *http.Client
}

// NewClient returns a client for the API socket at path.
func NewClient(socket string) *Client {
	var d net.Dialer
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", socket) },
		DisableKeepAlives: true,
	}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// APIError is a non-2xx answer; Firecracker explains it in fault_message.
type APIError struct {
	Method, Path string
	Status       int
	Fault        string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("firecracker %s %s: %d %s", e.Method, e.Path, e.Status, e.Fault)
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://firecracker"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var f struct {
			Fault string `json:"fault_message"`
		}
		json.Unmarshal(data, &f)
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Fault: f.Fault}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

// BootSource is PUT /boot-source.
type BootSource struct {
	KernelImagePath string `json:"kernel_image_path"`
	InitrdPath      string `json:"initrd_path,omitempty"`
	BootArgs        string `json:"boot_args,omitempty"`
}

// Drive is PUT /drives/{drive_id}.
type Drive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
}

// MachineConfig is PUT /machine-config.
type MachineConfig struct {
	VCPUCount  int  `json:"vcpu_count"`
	MemSizeMiB int  `json:"mem_size_mib"`
	SMT        bool `json:"smt"`
}

// Vsock is PUT /vsock: the guest's CID and the host socket its ports are
// reached through.
type Vsock struct {
	GuestCID uint32 `json:"guest_cid"`
	UDSPath  string `json:"uds_path"`
}

// NetworkInterface is PUT /network-interfaces/{iface_id}.
type NetworkInterface struct {
	IfaceID     string `json:"iface_id"`
	HostDevName string `json:"host_dev_name"`
	GuestMAC    string `json:"guest_mac,omitempty"`
}

// SnapshotCreate is PUT /snapshot/create (the VM must be paused).
type SnapshotCreate struct {
	SnapshotType string `json:"snapshot_type"` // "Full" or "Diff"
	SnapshotPath string `json:"snapshot_path"`
	MemFilePath  string `json:"mem_file_path"`
}

// MemBackend tells SnapshotLoad where the guest memory comes from.
type MemBackend struct {
	BackendType string `json:"backend_type"` // "File" or "Uffd"
	BackendPath string `json:"backend_path"`
}

// SnapshotLoad is PUT /snapshot/load (on a fresh, unconfigured process).
type SnapshotLoad struct {
	SnapshotPath        string     `json:"snapshot_path"`
	MemBackend          MemBackend `json:"mem_backend"`
	EnableDiffSnapshots bool       `json:"enable_diff_snapshots"`
	ResumeVM            bool       `json:"resume_vm"`
}

// InstanceInfo is GET /.
type InstanceInfo struct {
	ID         string `json:"id"`
	State      string `json:"state"` // "Not started", "Running", "Paused"
	VMMVersion string `json:"vmm_version"`
	AppName    string `json:"app_name"`
}

// PutBootSource sets the kernel, initrd and command line.
func (c *Client) PutBootSource(ctx context.Context, b BootSource) error {
	return c.call(ctx, http.MethodPut, "/boot-source", b, nil)
}

// PutDrive attaches a block device.
func (c *Client) PutDrive(ctx context.Context, d Drive) error {
	return c.call(ctx, http.MethodPut, "/drives/"+d.DriveID, d, nil)
}

// PutMachineConfig sets vCPUs and memory.
func (c *Client) PutMachineConfig(ctx context.Context, m MachineConfig) error {
	return c.call(ctx, http.MethodPut, "/machine-config", m, nil)
}

// PutVsock adds the vsock device.
func (c *Client) PutVsock(ctx context.Context, v Vsock) error {
	return c.call(ctx, http.MethodPut, "/vsock", v, nil)
}

// PutNetworkInterface attaches a tap device.
func (c *Client) PutNetworkInterface(ctx context.Context, n NetworkInterface) error {
	return c.call(ctx, http.MethodPut, "/network-interfaces/"+n.IfaceID, n, nil)
}

// Action runs a synchronous action: "InstanceStart", "SendCtrlAltDel" or
// "FlushMetrics".
func (c *Client) Action(ctx context.Context, action string) error {
	return c.call(ctx, http.MethodPut, "/actions", map[string]string{"action_type": action}, nil)
}

// SetVMState pauses ("Paused") or resumes ("Resumed") the guest.
func (c *Client) SetVMState(ctx context.Context, state string) error {
	return c.call(ctx, http.MethodPatch, "/vm", map[string]string{"state": state}, nil)
}

// CreateSnapshot writes the paused VM's state and memory to files.
func (c *Client) CreateSnapshot(ctx context.Context, s SnapshotCreate) error {
	return c.call(ctx, http.MethodPut, "/snapshot/create", s, nil)
}

// LoadSnapshot restores a VM into a fresh Firecracker process.
func (c *Client) LoadSnapshot(ctx context.Context, s SnapshotLoad) error {
	return c.call(ctx, http.MethodPut, "/snapshot/load", s, nil)
}

// Describe returns the instance's id, state and version.
func (c *Client) Describe(ctx context.Context) (InstanceInfo, error) {
	var info InstanceInfo
	err := c.call(ctx, http.MethodGet, "/", nil, &info)
	return info, err
}

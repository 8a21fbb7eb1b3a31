// Package bundle writes a support bundle: a tar.gz with the version, the
// redacted configuration, the production lint, doctor, diagnostics and the
// recent server log, for attaching to a bug report. Secrets never leave:
// the config goes through redact.Config, and every file's bytes are
// scrubbed of every configured secret value before they are written.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/ops/diag"
	"github.com/stacyvm/stacyvm/internal/ops/doctor"
	"github.com/stacyvm/stacyvm/internal/ops/lint"
	"github.com/stacyvm/stacyvm/internal/ops/redact"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// DefaultLogLines is how much of the server log a bundle carries.
const DefaultLogLines = 2000

// Options configure Write.
type Options struct {
	Out        string
	Version    string // `stacyvm version` text
	ConfigFile string
	Env        []string
	Home       string
	LogFile    string // the server's log file; "" = journalctl when present
	LogLines   int
	Doctor     doctor.Options // File, Env, Home are set from the fields above
	Now        time.Time
}

// Manifest lists what a bundle holds.
type Manifest struct {
	Path  string   `json:"path"`
	Files []string `json:"files"`
	Notes []string `json:"notes"`
}

// Write collects everything and writes the bundle to o.Out (mode 0600; an
// existing file is refused).
func Write(ctx context.Context, o Options) (*Manifest, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.LogLines <= 0 {
		o.LogLines = DefaultLogLines
	}
	if _, err := os.Stat(o.Out); err == nil {
		return nil, errs.New(errs.Conflict, "%s already exists; choose a new bundle file", o.Out)
	}
	m := &Manifest{Path: o.Out}
	files := map[string][]byte{}
	files["version.txt"] = []byte(o.Version + "\n")

	cfg, cfgErr := config.Load(config.LoadOptions{File: o.ConfigFile, Env: o.Env, Home: o.Home})
	secrets := envSecrets(o.Env)
	if cfgErr != nil {
		secrets = append(secrets, fileSecrets(o.ConfigFile, o.Env)...)
		files["config-error.txt"] = []byte(cfgErr.Error() + "\n")
		m.Notes = append(m.Notes, "the configuration did not load: see config-error.txt")
	} else {
		secrets = append(secrets, redact.Secrets(cfg)...)
		y, err := yamlv3.Marshal(redact.Config(cfg))
		if err != nil {
			y = []byte("marshal failed: " + err.Error())
		}
		files["config.redacted.yaml"] = append([]byte(fmt.Sprintf("# source: %s\n# every secret:\"true\" field is %s\n", orDefault(cfg.Source, "(defaults and environment only)"), redact.Mask)), y...)
	}
	files["environment.txt"] = envNames(o.Env)

	lr := lint.Run(lint.Options{File: o.ConfigFile, Env: o.Env, Home: o.Home, Production: true})
	var b bytes.Buffer
	lr.Text(&b)
	files["lint.txt"] = bytes.Clone(b.Bytes())
	files["lint.json"] = mustJSON(lr)

	do := o.Doctor
	do.File, do.Env, do.Home, do.Production = o.ConfigFile, o.Env, o.Home, true
	dr := doctor.Run(ctx, do)
	b.Reset()
	dr.Markdown(&b)
	files["doctor.md"] = bytes.Clone(b.Bytes())
	files["doctor.json"] = mustJSON(dr)

	if cfg != nil {
		d, note := diagnostics(ctx, cfg, o.Version)
		files["diagnostics.json"] = d
		m.Notes = append(m.Notes, note)
	}
	logs, note := serverLogs(ctx, o.LogFile, o.LogLines)
	files["server.log"] = logs
	m.Notes = append(m.Notes, note)

	names := make([]string, 0, len(files)+1)
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	files["MANIFEST.txt"] = []byte(fmt.Sprintf("StacyVM support bundle, %s\n\nfiles:\n  %s\n\nnotes:\n  %s\n",
		o.Now.UTC().Format(time.RFC3339), strings.Join(names, "\n  "), strings.Join(m.Notes, "\n  ")))
	names = append(names, "MANIFEST.txt")
	m.Files = names
	if err := writeTarGz(o.Out, files, names, secrets, o.Now); err != nil {
		return nil, err
	}
	return m, nil
}

// envSecrets returns the values of STACYVM_* variables that set a secret
// key, so they are scrubbed even when the config does not load.
func envSecrets(env []string) []string {
	secretEnv := map[string]bool{}
	for _, k := range redact.SecretFields() {
		secretEnv[config.EnvName(k)] = true
	}
	var out []string
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && secretEnv[k] && v != "" {
			out = append(out, v)
		}
	}
	return out
}

// fileSecrets finds secret values without a loadable config: the raw YAML
// values of secret keys and the contents of their *_file settings (from
// the YAML file or the environment), so a broken config still cannot leak
// a key into the bundle (e.g. through a log line).
func fileSecrets(configFile string, env []string) []string {
	var out []string
	add := func(v string) {
		if v = strings.TrimSpace(v); v == "" {
			return
		}
		out = append(out, v)
		for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' }) {
			if k = strings.TrimSpace(k); len(k) >= 4 {
				out = append(out, k)
			}
		}
	}
	readFile := func(p string) {
		if b, err := os.ReadFile(p); err == nil && len(b) < 1<<16 {
			add(string(b))
		}
	}
	var doc map[string]any
	if b, err := os.ReadFile(configFile); err == nil {
		_ = yamlv3.Unmarshal(b, &doc)
	}
	lookup := func(key string) (any, bool) {
		var cur any = doc
		for _, part := range strings.Split(key, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[part]; !ok {
				return nil, false
			}
		}
		return cur, true
	}
	for _, key := range redact.SecretFields() {
		if v, ok := lookup(key); ok {
			add(fmt.Sprint(v))
		}
		if v, ok := lookup(key + "_file"); ok {
			readFile(fmt.Sprint(v))
		}
		for _, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok && k == config.EnvName(key+"_file") {
				readFile(v)
			}
		}
	}
	return out
}

// envNames lists the STACYVM_* variables set, without their values.
func envNames(env []string) []byte {
	var names []string
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, config.EnvPrefix) {
			names = append(names, k+"=[set, value omitted]")
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []byte("no STACYVM_* variables set\n")
	}
	return []byte(strings.Join(names, "\n") + "\n")
}

// diagnostics asks the running server (admin key from the config) and
// falls back to local facts.
func diagnostics(ctx context.Context, cfg *config.Config, version string) ([]byte, string) {
	if key := firstKey(cfg.Auth.AdminAPIKey); key != "" || (cfg.Auth.APIKey == "" && cfg.Auth.ViewerAPIKey == "") {
		host, port, _ := net.SplitHostPort(cfg.Server.Addr())
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(cctx, "GET", "http://"+net.JoinHostPort(host, port)+"/api/v1/diagnostics", nil)
		if key != "" {
			req.Header.Set("X-Admin-API-Key", key)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Valid(body) {
				return body, "diagnostics.json: from the running server at " + req.URL.Host
			}
		}
	}
	d := diag.Collect(ctx, diag.Input{Config: cfg, Version: version})
	if ms, err := sqlite.Migrations(ctx, cfg.Database.Path); err == nil {
		d.Database["schema_version"] = ms.Current
		d.Database["pending_migrations"] = ms.Pending
	}
	d.Errors = append(d.Errors, "no running server answered with diagnostics: local facts only")
	return mustJSON(d), "diagnostics.json: local facts (no running server answered)"
}

func firstKey(v string) string {
	for _, k := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' }) {
		if k = strings.TrimSpace(k); k != "" {
			return k
		}
	}
	return ""
}

// serverLogs returns the last lines of the log file, else of the stacyvm
// systemd unit's journal, else a note saying neither was available.
func serverLogs(ctx context.Context, file string, lines int) ([]byte, string) {
	if file != "" {
		b, err := tail(file, lines)
		if err != nil {
			return []byte("reading " + file + " failed: " + err.Error() + "\n"), "server.log: " + file + " could not be read"
		}
		return b, fmt.Sprintf("server.log: last %d lines of %s", lines, file)
	}
	if path, err := exec.LookPath("journalctl"); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, path, "-u", "stacyvm", "-n", fmt.Sprint(lines), "--no-pager", "-o", "short-iso").Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return out, "server.log: journalctl -u stacyvm"
		}
	}
	msg := "no server log in this bundle: no --log-file was given and journalctl has no stacyvm unit here.\n" +
		"The server logs to stderr; rerun with --log-file FILE pointing at where your supervisor writes it.\n"
	return []byte(msg), "server.log: no log source available (see the file)"
}

// tail returns the last n lines of a file, reading at most 8 MiB from its end.
func tail(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	const maxRead = 8 << 20
	off := max(fi.Size()-maxRead, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return nil, err
	}
	ls := strings.SplitAfter(string(b), "\n")
	if len(ls) > 0 && ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return []byte(strings.Join(ls, "")), nil
}

func writeTarGz(out string, files map[string][]byte, names, secrets []string, now time.Time) error {
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return errs.Wrap(errs.Unavailable, err, "create %s", out)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	fail := func(err error) error {
		f.Close()
		os.Remove(out)
		return errs.Wrap(errs.Unavailable, err, "write %s", out)
	}
	for _, n := range names {
		body := []byte(redact.Text(string(files[n]), secrets))
		if err := tw.WriteHeader(&tar.Header{Name: "stacyvm-support/" + n, Mode: 0o600, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return fail(err)
		}
		if _, err := tw.Write(body); err != nil {
			return fail(err)
		}
	}
	if err := tw.Close(); err != nil {
		return fail(err)
	}
	if err := zw.Close(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	return f.Close()
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return []byte(`{"error":"marshal failed"}`)
	}
	return append(b, '\n')
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

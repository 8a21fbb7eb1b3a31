// Package doctor checks that a host is set up to run StacyVM as configured:
// the config (and, with --production, the production lint), the database
// (file, migrations, integrity), every enabled provider's host checks, the
// images sandboxes start from, disk space, the clock and the listen port.
// Every failure carries an exact remediation: a command or an anchor in
// docs/operations.md (a test checks the anchors exist).
package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/ops/lint"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// Status is a check's outcome.
type Status string

// The outcomes; only FAIL makes doctor exit non-zero.
const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Check is one line of the report.
type Check struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Detail  string `json:"detail,omitempty"`
	Remedy  string `json:"remedy,omitempty"`
}

// Report is doctor's result.
type Report struct {
	Config     string  `json:"config"`
	Production bool    `json:"production"`
	Passed     bool    `json:"passed"`
	Failures   int     `json:"failures"`
	Warnings   int     `json:"warnings"`
	Checks     []Check `json:"checks"`
}

// Options configure Run.
type Options struct {
	File       string
	Env        []string
	Home       string
	Production bool
	// ProviderChecks returns the host checks of an enabled provider
	// (app.RuntimeHostChecks); nil skips the provider section.
	ProviderChecks func(ctx context.Context, cfg *config.Config, name string) []provider.HostCheck
	// Images reports whether each image is present for a docker-family
	// provider; nil skips the image section.
	Images func(ctx context.Context, cfg *config.Config, providerName string, images []string) []Check
	Now    func() time.Time
}

// Docs anchors used in remedies; docs/operations.md must define each.
const (
	docConfig    = "docs/operations.md#configuration"
	docDatabase  = "docs/operations.md#database"
	docRestore   = "docs/operations.md#restore"
	docUpgrade   = "docs/operations.md#upgrades"
	docProviders = "docs/operations.md#providers"
	docImages    = "docs/operations.md#images"
	docDisk      = "docs/operations.md#disk-space"
	docClock     = "docs/operations.md#clock"
	docPort      = "docs/operations.md#port"
)

// Run performs every check. It never stops early except when the config
// cannot be loaded (nothing else can be checked then).
func Run(ctx context.Context, o Options) *Report {
	r := &Report{Production: o.Production, Checks: []Check{}}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg, ok := r.configChecks(o)
	if !ok {
		return r.finish()
	}
	r.storeChecks(ctx, cfg)
	r.providerChecks(ctx, cfg, o)
	r.diskCheck(cfg)
	r.clockCheck(ctx, o.Now())
	r.portCheck(ctx, cfg)
	return r.finish()
}

func (r *Report) add(section, name string, st Status, detail, remedy string) {
	r.Checks = append(r.Checks, Check{Section: section, Name: name, Status: st, Detail: detail, Remedy: remedy})
}

func (r *Report) finish() *Report {
	r.Failures, r.Warnings = 0, 0
	for _, c := range r.Checks {
		switch c.Status {
		case Fail:
			r.Failures++
		case Warn:
			r.Warnings++
		}
	}
	r.Passed = r.Failures == 0
	return r
}

func (r *Report) configChecks(o Options) (*config.Config, bool) {
	cfg, err := config.Load(config.LoadOptions{File: o.File, Env: o.Env, Home: o.Home})
	if err != nil {
		r.Config = o.File
		r.add("config", "load", Fail, oneLine(err.Error()), "stacyvm config lint --file "+orDefault(o.File, "<file>")+" shows each problem with its line; "+docConfig)
		return nil, false
	}
	r.Config = cfg.Source
	src := cfg.Source
	if src == "" {
		src = "defaults and environment only"
	}
	r.add("config", "load", Pass, src, "")
	if err := cfg.Validate(); err != nil {
		r.add("config", "validate", Fail, oneLine(err.Error()), "fix the keys named; "+docConfig)
	} else {
		r.add("config", "validate", Pass, "", "")
	}
	for _, w := range cfg.Warnings {
		r.add("config", "warning", Warn, w, docConfig)
	}
	if o.Production {
		fs := lint.Check(cfg)
		for _, f := range fs {
			st := Warn
			if f.Severity == lint.Error {
				st = Fail
			}
			r.add("production", f.Rule, st, f.Message, f.Remediation)
		}
		if len(fs) == 0 {
			r.add("production", "lint", Pass, fmt.Sprintf("%d production rules pass", len(lint.Rules())), "")
		}
	}
	return cfg, true
}

func (r *Report) storeChecks(ctx context.Context, cfg *config.Config) {
	const sec = "database"
	if cfg.Database.Driver != "sqlite" {
		r.add(sec, "driver", Fail, fmt.Sprintf("database.driver %q: only sqlite is implemented", cfg.Database.Driver),
			"set database.driver: sqlite; "+docDatabase)
		return
	}
	path := cfg.Database.Path
	if err := writableDir(filepath.Dir(path)); err != nil {
		r.add(sec, "directory", Fail, err.Error(),
			fmt.Sprintf("install -d -m 0750 -o stacyvm %s; %s", filepath.Dir(path), docDatabase))
		return
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		r.add(sec, "file", Pass, path+" does not exist yet; the server creates it on first start", "")
		return
	}
	ms, err := sqlite.Migrations(ctx, path)
	if err != nil {
		r.add(sec, "open", Fail, oneLine(err.Error()), "stacyvm db restore <backup> --yes; "+docRestore)
		return
	}
	r.add(sec, "open", Pass, path, "")
	switch {
	case len(ms.Unknown) > 0:
		r.add(sec, "migrations", Fail, fmt.Sprintf("applied migrations %v are newer than this binary (latest %d)", ms.Unknown, ms.Latest),
			"run the newer stacyvm binary, or restore the pre-upgrade backup: stacyvm db restore <backup> --yes; "+docUpgrade)
	case len(ms.Pending) > 0:
		r.add(sec, "migrations", Warn, fmt.Sprintf("schema version %d, %d pending (%v); serve applies them at start", ms.Current, len(ms.Pending), ms.Pending),
			"stacyvm upgrade rehearse --config <file> --database "+path+"; "+docUpgrade)
	default:
		r.add(sec, "migrations", Pass, fmt.Sprintf("schema version %d (latest)", ms.Current), "")
	}
	probs, err := sqlite.IntegrityCheck(ctx, path)
	switch {
	case err != nil:
		r.add(sec, "integrity_check", Fail, oneLine(err.Error()), "stacyvm db restore <backup> --yes; "+docRestore)
	case len(probs) > 0:
		r.add(sec, "integrity_check", Fail, fmt.Sprintf("%d problem(s): %s", len(probs), probs[0]), "stacyvm db restore <backup> --yes; "+docRestore)
	default:
		r.add(sec, "integrity_check", Pass, "ok", "")
	}
}

// enabledProviders lists the enabled providers in a fixed order.
func enabledProviders(cfg *config.Config) []string {
	pc := cfg.Providers
	var out []string
	for _, p := range []struct {
		name string
		on   bool
	}{{"docker", pc.Docker.Enabled}, {"gvisor", pc.Gvisor.Enabled}, {"kata", pc.Kata.Enabled}, {"vm", pc.VM.Enabled}, {"proot", pc.Proot.Enabled}, {"mock", pc.Mock.Enabled}} {
		if p.on {
			out = append(out, p.name)
		}
	}
	return out
}

func (r *Report) providerChecks(ctx context.Context, cfg *config.Config, o Options) {
	names := enabledProviders(cfg)
	if len(names) == 0 {
		r.add("providers", "enabled", Fail, "no provider is enabled", "set providers.gvisor.enabled: true (or docker); "+docProviders)
		return
	}
	for _, name := range names {
		sec := "provider " + name
		if name == "mock" {
			r.add(sec, "mock", Warn, "the mock provider runs sandboxes as plain host processes (tests only)", "set providers.mock.enabled: false; "+docProviders)
			continue
		}
		if o.ProviderChecks == nil {
			r.add(sec, "host checks", Skip, "not available in this build", "")
			continue
		}
		for _, c := range o.ProviderChecks(ctx, cfg, name) {
			st, remedy := Pass, ""
			if c.Status != provider.CheckPass {
				// An enabled provider whose runtime is missing cannot serve.
				st = Fail
				remedy = c.Remedy
				if remedy != "" {
					remedy += "; "
				}
				remedy += docProviders
			}
			r.add(sec, c.Name, st, c.Detail, remedy)
		}
		if name == "vm" {
			r.vmChecks(cfg.Providers.VM)
		}
		if o.Images != nil && name != "proot" {
			imgs := []string{cfg.Defaults.Image}
			if name == cfg.Providers.Default {
				for img := range cfg.WarmPool.Pools() {
					if img != cfg.Defaults.Image {
						imgs = append(imgs, img)
					}
				}
			}
			r.Checks = append(r.Checks, o.Images(ctx, cfg, name, imgs)...)
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// vmChecks checks the microVM provider's boot assets and KVM access.
func (r *Report) vmChecks(vm config.VMConfig) {
	const sec = "provider vm"
	kernel, initrd := vm.Kernel, vm.Initrd
	if kernel == "" {
		kernel = filepath.Join(vm.AssetsDir, "vmlinux")
	}
	if initrd == "" {
		initrd = filepath.Join(vm.AssetsDir, "initrd-base.img")
	}
	for _, a := range []struct{ name, path string }{{"kernel", kernel}, {"initrd", initrd}} {
		if fi, err := os.Stat(a.path); err != nil || fi.Size() == 0 {
			r.add(sec, a.name+" present", Fail, a.path+" is missing or empty",
				"scripts/build-vm-assets.sh (builds the kernel and initrd into providers.vm.assets_dir); "+docProviders)
		} else {
			r.add(sec, a.name+" present", Pass, fmt.Sprintf("%s (%.1f MB)", a.path, float64(fi.Size())/1e6), "")
		}
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	switch {
	case err == nil:
		f.Close()
		r.add(sec, "/dev/kvm access", Pass, "read-write", "")
	case vm.Accel == "tcg":
		r.add(sec, "/dev/kvm access", Pass, "not needed (accel: tcg)", "")
	case vm.Accel == "kvm":
		r.add(sec, "/dev/kvm access", Fail, oneLine(err.Error()),
			"modprobe kvm_intel (or kvm_amd) and add the service user to the kvm group (usermod -aG kvm stacyvm); "+docProviders)
	default:
		r.add(sec, "/dev/kvm access", Warn, oneLine(err.Error())+": accel auto falls back to TCG emulation (slow)",
			"modprobe kvm_intel (or kvm_amd) and usermod -aG kvm stacyvm; "+docProviders)
	}
}

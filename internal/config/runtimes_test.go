package config

import (
	"strings"
	"testing"
)

// TestValidate_RuntimeProviders: gvisor, kata and proot are valid defaults
// once enabled, and their sections are checked like providers.docker.
func TestValidate_RuntimeProviders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mut     func(c *Config)
		wantErr string
	}{
		{"ProotDefaultDisabled", func(c *Config) { c.Providers.Default = "proot" }, "providers.default"},
		{"ProotDefaultEnabled", func(c *Config) { c.Providers.Default = "proot"; c.Providers.Proot.Enabled = true }, ""},
		{"GvisorDefaultEnabled", func(c *Config) { c.Providers.Default = "gvisor"; c.Providers.Gvisor.Enabled = true }, ""},
		{"KataEnabled", func(c *Config) { c.Providers.Kata.Enabled = true }, ""},
		{"GvisorHostNetwork", func(c *Config) { c.Providers.Gvisor.Enabled = true; c.Providers.Gvisor.NetworkMode = "host" }, "providers.gvisor.network_mode"},
		{"KataNoRuntime", func(c *Config) { c.Providers.Kata.Enabled = true; c.Providers.Kata.Runtime = "" }, "providers.kata.runtime"},
		{"ProotTinyMemory", func(c *Config) { c.Providers.Proot.Enabled = true; c.Providers.Proot.MemoryMB = 4 }, "providers.proot"},
		{"UnknownDefault", func(c *Config) { c.Providers.Default = "lxc" }, "gvisor, kata, proot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default(t.TempDir(), false)
			c.Database.Path = "/tmp/x.db"
			tc.mut(c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error naming %q", err, tc.wantErr)
			}
		})
	}
}

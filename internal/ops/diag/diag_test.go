package diag

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

func TestCollect_RedactedAndFactual(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config.Default(dir, false)
	cfg.Database.Path = filepath.Join(dir, "db.sqlite")
	cfg.Auth.APIKey = "diag-planted-api-key-0123456789abcdef"
	cfg.Auth.AdminAPIKey = "diag-planted-admin-key-0123456789abcd"
	cfg.Database.DSN = "postgres://u:diag-planted-password@h/db"
	st, err := sqlite.Open(ctx, cfg.Database.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bus := events.NewBus(16)
	bus.Publish(events.SandboxCreated, nil)
	d := Collect(ctx, Input{Config: cfg, Version: "v1", StartedAt: time.Now().Add(-time.Minute), Store: st, Schema: st, Events: bus})
	b, _ := json.Marshal(d)
	for _, s := range []string{"diag-planted-api-key", "diag-planted-admin-key", "diag-planted-password"} {
		if strings.Contains(string(b), s) {
			t.Errorf("diagnostics contain %q", s)
		}
	}
	if d.Database["reachable"] != true || d.Database["schema_version"] == nil || d.Events["last_id"] != 1 || d.Uptime != "1m0s" {
		t.Errorf("facts missing: %s", b)
	}
	if d.Config.Auth.APIKey != "[redacted]" || cfg.Auth.APIKey == "[redacted]" {
		t.Error("redaction must mask the copy, not the live config")
	}
}

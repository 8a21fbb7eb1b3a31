package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate_DatabaseDriver(t *testing.T) {
	for _, c := range []struct {
		name    string
		db      DatabaseConfig
		wantErr string // "" = valid
	}{
		{"sqlite", DatabaseConfig{Driver: DriverSQLite, Path: "/var/lib/stacyvm/stacyvm.db"}, ""},
		{"sqlite without path", DatabaseConfig{Driver: DriverSQLite}, "database.path: must not be empty for the sqlite driver"},
		{"postgres", DatabaseConfig{Driver: DriverPostgres, DSN: "host=db dbname=stacyvm"}, ""},
		{"postgres without dsn", DatabaseConfig{Driver: DriverPostgres}, "database.dsn: must be set for the postgres driver"},
		{"unknown driver", DatabaseConfig{Driver: "mysql"}, `database.driver: must be "sqlite" or "postgres", got "mysql"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default("/home/x", false)
			cfg.Database = c.db
			err := cfg.Validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v, want nil", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("Validate: %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}

func TestLoad_DatabaseDSNFile(t *testing.T) {
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	const dsn = "postgres://stacyvm:s3cret@db/stacyvm"
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := testLoad(t, "database:\n  driver: postgres\n", "STACYVM_DATABASE_DSN_FILE="+dsnFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.DSN != dsn || cfg.Database.Path != "" {
		t.Fatalf("database = %+v; want the DSN from the file and no sqlite path", cfg.Database)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if r := cfg.Redacted(); strings.Contains(r.Database.DSN, "s3cret") || r.Database.DSNFile != dsnFile {
		t.Fatalf("Redacted database = %+v; want the DSN masked and the file path kept", r.Database)
	}
	if _, err := testLoad(t, "", "STACYVM_DATABASE_DSN=x", "STACYVM_DATABASE_DSN_FILE="+dsnFile); err == nil ||
		!strings.Contains(err.Error(), "database.dsn: set either the value or the _file variant") {
		t.Fatalf("dsn and dsn_file both set: %v", err)
	}
}

package postgres

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDSN(t *testing.T) {
	for _, c := range []struct {
		name, dsn string
		want      []param
	}{
		{"keywords", "host=db port=5432 user=stacyvm password=s3cret dbname=stacyvm sslmode=verify-full",
			[]param{{"host", "db"}, {"port", "5432"}, {"user", "stacyvm"}, {"password", "s3cret"}, {"dbname", "stacyvm"}, {"sslmode", "verify-full"}}},
		{"backslash escapes", `password='it\'s \\ me' user = 'a b' application_name=x\ y`,
			[]param{{"password", `it's \ me`}, {"user", "a b"}, {"application_name", "x y"}}},
		{"url", "postgres://stacyvm:p%40ss:w@db.example:6432/stacy%20db?sslmode=require&application_name=svm",
			[]param{{"user", "stacyvm"}, {"password", "p@ss:w"}, {"host", "db.example"}, {"port", "6432"}, {"dbname", "stacy db"}, {"sslmode", "require"}, {"application_name", "svm"}}},
		{"url multi-host ipv6", "postgresql://u@[::1]:5432,db2/x",
			[]param{{"user", "u"}, {"host", "::1,db2"}, {"port", "5432,"}, {"dbname", "x"}}},
		{"url socket dir", "postgres:///stacyvm?host=/run/postgresql",
			[]param{{"dbname", "stacyvm"}, {"host", "/run/postgresql"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseDSN(c.dsn)
			if err != nil {
				t.Fatalf("parseDSN(%q): %v", c.dsn, err)
			}
			if d := cmp.Diff(c.want, got, cmp.AllowUnexported(param{})); d != "" {
				t.Fatalf("parseDSN(%q) (-want +got):\n%s", c.dsn, d)
			}
			// Formatting and parsing again is lossless.
			again, err := parseDSN(formatDSN(got))
			if err != nil || !cmp.Equal(got, again, cmp.AllowUnexported(param{})) {
				t.Fatalf("round trip of %q: %v, %v", formatDSN(got), again, err)
			}
		})
	}
	for _, bad := range []string{"host", "host='open", "=x"} {
		if _, err := parseDSN(bad); err == nil {
			t.Errorf("parseDSN(%q) succeeded", bad)
		}
	}
}

func TestLibpqDSN_KeepsPasswordAndPgxKeysOff(t *testing.T) {
	conn, pw, err := libpqDSN("postgres://u:s3cret@db/live?pool_max_conns=8&statement_cache_capacity=0&sslmode=disable", "scratch")
	if err != nil {
		t.Fatal(err)
	}
	if want := "user=u host=db dbname=scratch sslmode=disable"; conn != want || pw != "s3cret" {
		t.Fatalf("libpqDSN = %q, %q; want %q, %q", conn, pw, want, "s3cret")
	}
}

func TestRedact(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://u:s3cret@db/x":           "user=u password=[redacted] host=db dbname=x",
		"host=db password='s 3' dbname=x":    "host=db password=[redacted] dbname=x",
		"host=db dbname=x":                   "host=db dbname=x",
		"host='unterminated password=s3cret": "(unparsable DSN)",
	} {
		if got := Redact(dsn); got != want {
			t.Errorf("Redact(%q) = %q, want %q", dsn, got, want)
		}
	}
}

package redact

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/config"
)

// secretName matches keys that hold credentials; *_file keys hold paths.
var secretName = regexp.MustCompile(`(^|_)(api_key|key|secret|token|password|dsn|private)($|_)`)

// TestSecretFields_EveryCredentialFieldIsMarked fails when a new config
// field that looks like a credential lacks the secret:"true" marker (and
// would leak into diagnostics and support bundles).
func TestSecretFields_EveryCredentialFieldIsMarked(t *testing.T) {
	marked := map[string]bool{}
	for _, k := range SecretFields() {
		marked[k] = true
	}
	var rec func(rt reflect.Type, prefix string)
	rec = func(rt reflect.Type, prefix string) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			key := f.Tag.Get("koanf")
			if key == "" || key == "-" {
				continue
			}
			full := key
			if prefix != "" {
				full = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct {
				rec(f.Type, full)
				continue
			}
			if f.Type.Kind() == reflect.String && secretName.MatchString(key) && !strings.HasSuffix(key, "_file") && !marked[full] {
				t.Errorf("config key %s looks like a secret but has no secret:\"true\" tag", full)
			}
		}
	}
	rec(reflect.TypeFor[config.Config](), "")
	if len(marked) < 3 {
		t.Fatalf("only %d secret fields found: %v", len(marked), SecretFields())
	}
}

func TestConfig_MasksEverySecretField(t *testing.T) {
	c := config.Default("/home/x", false)
	plant(t, c, "planted-secret-value")
	r := Config(c)
	for _, s := range Secrets(r) {
		if s != Mask {
			t.Errorf("secret survived redaction: %q", s)
		}
	}
	if n := len(Secrets(c)); n != len(SecretFields()) {
		t.Errorf("Secrets found %d values, want %d", n, len(SecretFields()))
	}
	if got := Text("a "+c.Auth.APIKey+" b", Secrets(c)); got != "a "+Mask+" b" {
		t.Error("Text did not scrub")
	}
}

// plant sets every secret field of c to prefix + "-" + its key.
func plant(t *testing.T, c *config.Config, prefix string) {
	t.Helper()
	var rec func(v reflect.Value, p string)
	rec = func(v reflect.Value, p string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			key := f.Tag.Get("koanf")
			if v.Field(i).Kind() == reflect.Struct {
				rec(v.Field(i), p+key+".")
			} else if f.Tag.Get("secret") == "true" {
				v.Field(i).SetString(prefix + "-" + strings.ReplaceAll(p+key, ".", "-"))
			}
		}
	}
	rec(reflect.ValueOf(c).Elem(), "")
}

// Package redact removes secrets from configuration and text before they
// leave the process (diagnostics, support bundles). A config field is a
// secret when its struct tag carries `secret:"true"`; Secrets lists the set
// values so free text (logs) can be scrubbed too.
package redact

import (
	"reflect"
	"strings"

	"github.com/stacyvm/stacyvm/internal/config"
)

// Mask replaces a secret value.
const Mask = "[redacted]"

// Config returns a deep-enough copy of c (config.Redacted) with every
// `secret:"true"` field masked, whether or not Redacted knows it.
func Config(c *config.Config) *config.Config {
	r := c.Redacted()
	walk(reflect.ValueOf(r).Elem(), func(v reflect.Value) {
		if v.String() != "" {
			v.SetString(Mask)
		}
	})
	return r
}

// Secrets returns the non-empty secret values of c (each comma- or
// newline-separated part too, as keys may list several for rotation).
func Secrets(c *config.Config) []string {
	var out []string
	walk(reflect.ValueOf(c).Elem(), func(v reflect.Value) {
		s := v.String()
		if s == "" {
			return
		}
		out = append(out, s)
		for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
			if p := strings.TrimSpace(part); len(p) >= 4 && p != s {
				out = append(out, p)
			}
		}
	})
	return out
}

// Text replaces every occurrence of each secret in s.
func Text(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, Mask)
		}
	}
	return s
}

// SecretFields lists the dotted koanf keys of every secret field.
func SecretFields() []string {
	var out []string
	var rec func(t reflect.Type, prefix string)
	rec = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			key := f.Tag.Get("koanf")
			if key == "" || key == "-" {
				continue
			}
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct {
				rec(f.Type, key)
			} else if f.Tag.Get("secret") == "true" {
				out = append(out, key)
			}
		}
	}
	rec(reflect.TypeFor[config.Config](), "")
	return out
}

// walk calls fn for every settable string field tagged secret:"true".
func walk(v reflect.Value, fn func(reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		switch {
		case fv.Kind() == reflect.Struct:
			walk(fv, fn)
		case f.Tag.Get("secret") == "true" && fv.Kind() == reflect.String:
			fn(fv)
		}
	}
}

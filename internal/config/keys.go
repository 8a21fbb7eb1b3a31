package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag := f.Tag.Get("koanf"); tag == name && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// keySet is every leaf key of Config, by dotted key and by env name.
type keySet struct {
	types map[string]reflect.Type // "server.port" -> int
	byEnv map[string]string       // "STACYVM_SERVER_PORT" -> "server.port"
}

// knownKeys derives the key set from the struct tags, so a new field is
// bindable from YAML and the environment without another list to update.
func knownKeys() keySet {
	ks := keySet{types: map[string]reflect.Type{}, byEnv: map[string]string{}}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("koanf")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, key)
				continue
			}
			ks.types[key] = f.Type
			ks.byEnv[EnvName(key)] = key
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return ks
}

// EnvName is the environment variable that overrides key, e.g.
// "providers.docker.network_mode" -> "STACYVM_PROVIDERS_DOCKER_NETWORK_MODE".
func EnvName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// parseEnvValue converts an environment string to the type of the key.
func parseEnvValue(t reflect.Type, s string) (any, error) {
	if t == reflect.TypeFor[Duration]() {
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("invalid duration %q", s)
		}
		return s, nil
	}
	switch t.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("invalid boolean %q", s)
		}
		return v, nil
	case reflect.Int, reflect.Int64:
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid integer %q", s)
		}
		if t.Kind() == reflect.Int {
			return int(v), nil
		}
		return v, nil
	case reflect.Float64:
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("invalid number %q", s)
		}
		return v, nil
	case reflect.Slice:
		out := []string{}
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

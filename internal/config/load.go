package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// EnvPrefix starts every environment variable Load reads.
const EnvPrefix = "STACYVM_"

// isCLIEnv reports STACYVM_* variables that belong to the CLI, not to the
// server config; Load ignores them without a warning.
func isCLIEnv(name string) bool {
	return name == "STACYVM_SERVER" || name == "STACYVM_API_KEY"
}

// LoadOptions tells Load where to look. Load itself never reads the process
// environment; main passes it in.
type LoadOptions struct {
	// File is the --config path. "" searches ./stacyvm.yaml, then
	// <Home>/.stacyvm/config.yaml, and uses the first found; none is fine.
	// An explicit File that does not exist is an error.
	File string
	// Env is the environment as KEY=VALUE pairs (os.Environ()).
	Env []string
	// Home is the user's home directory, for "~" and the default paths.
	Home string
	// Root selects the system data dir (/var/lib/stacyvm); nil means
	// "the process runs as uid 0".
	Root *bool
	// WorkDir resolves relative paths given by environment variables; ""
	// means the process working directory.
	WorkDir string
}

// Load builds the configuration: defaults, then the YAML file, then
// STACYVM_* environment overrides. Paths come back absolute and *_file
// secrets are read. It does not validate; call Validate. Errors are of
// class errs.Invalid unless a file could not be read.
func Load(opts LoadOptions) (*Config, error) {
	if opts.Home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			opts.Home = h
		}
	}
	if opts.WorkDir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("config: working directory: %w", err)
		}
		opts.WorkDir = wd
	}
	root := os.Geteuid() == 0
	if opts.Root != nil {
		root = *opts.Root
	}
	cfg := Default(opts.Home, root)
	keys := knownKeys()

	path, err := findFile(opts)
	if err != nil {
		return nil, err
	}
	fileK := koanf.New(".")
	if path != "" {
		cfg.Source = path
		if err := loadFile(fileK, path, keys); err != nil {
			return nil, err
		}
	}

	envK := koanf.New(".")
	var envErrs []string
	provider := env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return opts.Env },
		TransformFunc: func(name, value string) (string, any) {
			key, ok := keys.byEnv[name]
			if !ok {
				if !isCLIEnv(name) {
					cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("unknown environment variable %s ignored", name))
				}
				return "", nil
			}
			v, err := parseEnvValue(keys.types[key], value)
			if err != nil {
				envErrs = append(envErrs, fmt.Sprintf("%s: %v", name, err))
				return "", nil
			}
			return key, v
		},
	})
	if err := envK.Load(provider, nil); err != nil {
		return nil, fmt.Errorf("config: environment: %w", err)
	}
	if len(envErrs) > 0 {
		sort.Strings(envErrs)
		return nil, errs.New(errs.Invalid, "config: invalid environment:\n  %s", strings.Join(envErrs, "\n  "))
	}
	sort.Strings(cfg.Warnings)

	k := koanf.New(".")
	if err := k.Merge(fileK); err != nil {
		return nil, fmt.Errorf("config: merge: %w", err)
	}
	if err := k.Merge(envK); err != nil {
		return nil, fmt.Errorf("config: merge: %w", err)
	}
	if err := k.UnmarshalWithConf("", cfg, koanf.UnmarshalConf{
		Tag: "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{
			DecodeHook:       mapstructure.TextUnmarshallerHookFunc(),
			WeaklyTypedInput: false,
		},
	}); err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "config")
	}

	// Relative paths are relative to the file that set them, or to the
	// working directory when they came from the environment.
	resolve := func(key, p string) string {
		if p == "" {
			return ""
		}
		if p == "~" || strings.HasPrefix(p, "~/") {
			return filepath.Join(opts.Home, p[1:])
		}
		if filepath.IsAbs(p) {
			return filepath.Clean(p)
		}
		if !envK.Exists(key) && fileK.Exists(key) {
			return filepath.Join(filepath.Dir(path), p)
		}
		return filepath.Join(opts.WorkDir, p)
	}
	cfg.DataDir = resolve("data_dir", cfg.DataDir)
	cfg.Database.Path = resolve("database.path", cfg.Database.Path)
	if cfg.Database.Path == "" && cfg.Database.Driver == "sqlite" && cfg.DataDir != "" {
		cfg.Database.Path = filepath.Join(cfg.DataDir, "stacyvm.db")
	}
	cfg.Auth.APIKeyFile = resolve("auth.api_key_file", cfg.Auth.APIKeyFile)
	cfg.Auth.AdminAPIKeyFile = resolve("auth.admin_api_key_file", cfg.Auth.AdminAPIKeyFile)
	cfg.Auth.ViewerAPIKeyFile = resolve("auth.viewer_api_key_file", cfg.Auth.ViewerAPIKeyFile)
	cfg.Database.DSNFile = resolve("database.dsn_file", cfg.Database.DSNFile)
	for key, f := range map[string]*string{ // remote provider and worker (docs/worker-protocol.md)
		"providers.custom.token_file": &cfg.Providers.Custom.TokenFile, "providers.custom.ca_file": &cfg.Providers.Custom.CAFile,
		"providers.custom.cert_file": &cfg.Providers.Custom.CertFile, "providers.custom.key_file": &cfg.Providers.Custom.KeyFile,
		"worker.token_file": &cfg.Worker.TokenFile, "worker.tls_cert_file": &cfg.Worker.TLSCertFile,
		"worker.tls_key_file": &cfg.Worker.TLSKeyFile, "worker.client_ca_file": &cfg.Worker.ClientCAFile,
	} {
		*f = resolve(key, *f)
	}

	var secretErrs []string
	for _, s := range []struct {
		key         string
		value, file *string
	}{
		{"auth.api_key", &cfg.Auth.APIKey, &cfg.Auth.APIKeyFile},
		{"auth.admin_api_key", &cfg.Auth.AdminAPIKey, &cfg.Auth.AdminAPIKeyFile},
		{"auth.viewer_api_key", &cfg.Auth.ViewerAPIKey, &cfg.Auth.ViewerAPIKeyFile},
		{"database.dsn", &cfg.Database.DSN, &cfg.Database.DSNFile},
		{"providers.custom.token", &cfg.Providers.Custom.Token, &cfg.Providers.Custom.TokenFile},
		{"worker.token", &cfg.Worker.Token, &cfg.Worker.TokenFile},
	} {
		if err := readSecret(s.value, *s.file); err != nil {
			secretErrs = append(secretErrs, fmt.Sprintf("%s: %v", s.key, err))
		}
	}
	if len(secretErrs) > 0 {
		return nil, errs.New(errs.Invalid, "config: %s", strings.Join(secretErrs, "; "))
	}
	if path != "" && (fileK.String("auth.api_key") != "" || fileK.String("auth.admin_api_key") != "" || fileK.String("auth.viewer_api_key") != "" ||
		fileK.String("providers.custom.token") != "" || fileK.String("worker.token") != "") {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s holds API keys and is world-readable; chmod 600 it or use auth.*_file", path))
		}
	}
	if path != "" && fileK.String("database.dsn") != "" {
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o004 != 0 {
			cfg.Warnings = append(cfg.Warnings, fmt.Sprintf("%s holds database.dsn and is world-readable; chmod 600 it or use database.dsn_file", path))
		}
	}
	if hasEnv(opts.Env, "STACYVM_API_KEY") && cfg.Auth.APIKey == "" {
		cfg.Warnings = append(cfg.Warnings, "STACYVM_API_KEY is the CLI's key; the server reads STACYVM_AUTH_API_KEY")
	}
	return cfg, nil
}

// readSecret fills *value from file (trimmed) when file is set.
func readSecret(value *string, file string) error {
	if file == "" {
		return nil
	}
	if *value != "" {
		return errors.New("set either the value or the _file variant, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return fmt.Errorf("secret file %s is empty", file)
	}
	*value = s
	return nil
}

func hasEnv(environ []string, name string) bool {
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name {
			return true
		}
	}
	return false
}

// findFile returns the config file to load, "" when there is none.
func findFile(opts LoadOptions) (string, error) {
	if opts.File != "" {
		p := opts.File
		if p == "~" || strings.HasPrefix(p, "~/") {
			p = filepath.Join(opts.Home, p[1:])
		} else if !filepath.IsAbs(p) {
			p = filepath.Join(opts.WorkDir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", errs.Wrap(errs.Invalid, err, "config: file %s", opts.File)
		}
		return p, nil
	}
	candidates := []string{filepath.Join(opts.WorkDir, "stacyvm.yaml")}
	if opts.Home != "" {
		candidates = append(candidates, filepath.Join(opts.Home, ".stacyvm", "config.yaml"))
	}
	for _, p := range candidates {
		fi, err := os.Stat(p)
		if err == nil && !fi.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("config: %w", err)
		}
	}
	return "", nil
}

// loadFile checks the YAML against the known keys (unknown keys and wrong
// types are reported with key and line) and then loads it into k.
func loadFile(k *koanf.Koanf, path string, keys keySet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var doc yamlv3.Node
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return errs.Wrap(errs.Invalid, err, "config: %s: invalid YAML", path)
	}
	var problems []string
	if len(doc.Content) > 0 {
		checkNode(doc.Content[0], "", reflect.TypeFor[Config](), &problems)
	}
	if len(problems) > 0 {
		return errs.New(errs.Invalid, "config: %s:\n  %s", path, strings.Join(problems, "\n  "))
	}
	// Belt and braces: a strict decode catches anything the walk missed.
	strict := yamlv3.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	var probe Config
	if err := strict.Decode(&probe); err != nil && !errors.Is(err, io.EOF) {
		return errs.Wrap(errs.Invalid, err, "config: %s", path)
	}
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return errs.Wrap(errs.Invalid, err, "config: %s", path)
	}
	return nil
}

// checkNode walks a YAML node against the struct type t, recording unknown
// keys and type mismatches as "key (line N): problem".
func checkNode(n *yamlv3.Node, prefix string, t reflect.Type, problems *[]string) {
	if n.Kind == yamlv3.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	at := func(key string) string {
		if key == "" {
			return fmt.Sprintf("line %d", n.Line)
		}
		return fmt.Sprintf("%s (line %d)", key, n.Line)
	}
	tag := n.ShortTag()
	if tag == "!!null" {
		return
	}
	switch {
	case t.Kind() == reflect.Struct:
		if n.Kind != yamlv3.MappingNode {
			*problems = append(*problems, at(prefix)+": expected a mapping")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			key := kn.Value
			if prefix != "" {
				key = prefix + "." + kn.Value
			}
			f, ok := fieldByTag(t, kn.Value)
			if !ok {
				*problems = append(*problems, fmt.Sprintf("%s (line %d): unknown key", key, kn.Line))
				continue
			}
			checkNode(vn, key, f.Type, problems)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yamlv3.SequenceNode {
			*problems = append(*problems, at(prefix)+": expected a list")
			return
		}
		for _, c := range n.Content {
			if c.Kind != yamlv3.ScalarNode || c.ShortTag() != "!!str" {
				*problems = append(*problems, fmt.Sprintf("%s (line %d): list items must be strings", prefix, c.Line))
			}
		}
	default:
		want := map[reflect.Kind][]string{
			reflect.String:  {"!!str"},
			reflect.Bool:    {"!!bool"},
			reflect.Int:     {"!!int"},
			reflect.Int64:   {"!!int"},
			reflect.Float64: {"!!int", "!!float"},
		}[t.Kind()]
		name := map[reflect.Kind]string{reflect.String: "a string", reflect.Bool: "true or false",
			reflect.Int: "an integer", reflect.Int64: "an integer", reflect.Float64: "a number"}[t.Kind()]
		if t == reflect.TypeFor[Duration]() {
			want, name = []string{"!!str"}, `a duration string like "30s"`
		}
		if n.Kind != yamlv3.ScalarNode || !contains(want, tag) {
			*problems = append(*problems, fmt.Sprintf("%s: expected %s, got %s", at(prefix), name, describe(n)))
			return
		}
		if t == reflect.TypeFor[Duration]() {
			if _, err := time.ParseDuration(n.Value); err != nil {
				*problems = append(*problems, fmt.Sprintf("%s: invalid duration %q", at(prefix), n.Value))
			}
		}
	}
}

func describe(n *yamlv3.Node) string {
	switch n.Kind {
	case yamlv3.MappingNode:
		return "a mapping"
	case yamlv3.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

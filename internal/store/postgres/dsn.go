package postgres

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// A DSN is a libpq connection string: keyword/value ("host=db user=x
// dbname=stacyvm") or a URL (postgres://x:pw@db/stacyvm?sslmode=verify-full).
// pgx reads both. The maintenance commands hand the same DSN to pg_dump and
// pg_restore, so it is parsed here into keyword/value pairs: to swap the
// database for a scratch one, and to keep the password out of the child's
// command line (any local user can read that in /proc).

// param is one keyword/value pair of a DSN, in the order given.
type param struct{ key, value string }

// parseDSN splits dsn into its keyword/value pairs. URLs are turned into the
// equivalent keywords (user, password, host, port, dbname, then the query).
func parseDSN(dsn string) ([]param, error) {
	s := strings.TrimSpace(dsn)
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		return parseURL(s)
	}
	return parseKeywords(s)
}

func parseURL(s string) ([]param, error) {
	rest := s[strings.Index(s, "://")+3:]
	var query string
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i+1:]
	}
	var out []param
	add := func(k, raw string) error {
		v, err := url.PathUnescape(raw)
		if err != nil {
			return fmt.Errorf("bad %s in URL: %w", k, err)
		}
		out = append(out, param{k, v})
		return nil
	}
	path := ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest, path = rest[:i], rest[i+1:]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		user, pw, hasPW := strings.Cut(rest[:i], ":")
		if user != "" {
			if err := add("user", user); err != nil {
				return nil, err
			}
		}
		if hasPW {
			if err := add("password", pw); err != nil {
				return nil, err
			}
		}
		rest = rest[i+1:]
	}
	if rest != "" {
		var hosts, ports []string
		anyPort := false
		for _, hp := range strings.Split(rest, ",") {
			host, port := hp, ""
			if strings.HasPrefix(hp, "[") { // [IPv6]:port
				end := strings.IndexByte(hp, ']')
				if end < 0 {
					return nil, fmt.Errorf("bad host %q in URL", hp)
				}
				host, port = hp[1:end], strings.TrimPrefix(hp[end+1:], ":")
			} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
				host, port = hp[:i], hp[i+1:]
			}
			anyPort = anyPort || port != ""
			hosts, ports = append(hosts, host), append(ports, port)
		}
		if err := add("host", strings.Join(hosts, ",")); err != nil {
			return nil, err
		}
		if anyPort {
			out = append(out, param{"port", strings.Join(ports, ",")})
		}
	}
	if path != "" {
		if err := add("dbname", path); err != nil {
			return nil, err
		}
	}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			key, err := url.QueryUnescape(k)
			if err != nil {
				return nil, fmt.Errorf("bad URL parameter %q: %w", k, err)
			}
			val, err := url.QueryUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("bad URL parameter %q: %w", k, err)
			}
			out = append(out, param{key, val})
		}
	}
	return out, nil
}

// parseKeywords reads libpq's keyword = value syntax: values may be
// single-quoted, with \' and \\ escapes inside or outside quotes.
func parseKeywords(s string) ([]param, error) {
	var out []param
	r := []rune(s)
	i := 0
	skipSpace := func() {
		for i < len(r) && unicode.IsSpace(r[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(r) {
			return out, nil
		}
		start := i
		for i < len(r) && r[i] != '=' && !unicode.IsSpace(r[i]) {
			i++
		}
		key := string(r[start:i])
		if key == "" {
			return nil, fmt.Errorf("missing keyword before \"=\" in connection string")
		}
		skipSpace()
		if i >= len(r) || r[i] != '=' {
			return nil, fmt.Errorf("missing \"=\" after %q in connection string", key)
		}
		i++
		skipSpace()
		var v strings.Builder
		if i < len(r) && r[i] == '\'' {
			i++
			closed := false
			for i < len(r) {
				c := r[i]
				i++
				if c == '\\' && i < len(r) {
					v.WriteRune(r[i])
					i++
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				v.WriteRune(c)
			}
			if !closed {
				return nil, fmt.Errorf("unterminated quoted value for %q in connection string", key)
			}
		} else {
			for i < len(r) && !unicode.IsSpace(r[i]) {
				c := r[i]
				i++
				if c == '\\' && i < len(r) {
					c = r[i]
					i++
				}
				v.WriteRune(c)
			}
		}
		out = append(out, param{key, v.String()})
	}
}

// formatDSN writes pairs in keyword/value syntax, quoting where needed.
func formatDSN(ps []param) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		v := p.value
		if v == "" || strings.ContainsAny(v, " \t\n\r'\\") {
			v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
		}
		parts = append(parts, p.key+"="+v)
	}
	return strings.Join(parts, " ")
}

// set replaces every pair named key with one (key, value) pair at the
// position of the first, or appends it.
func set(ps []param, key, value string) []param {
	out := make([]param, 0, len(ps)+1)
	done := false
	for _, p := range ps {
		if p.key != key {
			out = append(out, p)
		} else if !done {
			out, done = append(out, param{key, value}), true
		}
	}
	if !done {
		out = append(out, param{key, value})
	}
	return out
}

// without drops every pair whose key matches drop.
func without(ps []param, drop func(key string) bool) []param {
	out := make([]param, 0, len(ps))
	for _, p := range ps {
		if !drop(p.key) {
			out = append(out, p)
		}
	}
	return out
}

// pgxOnly reports the DSN keys pgx understands and libpq refuses, which
// must not reach pg_dump or pg_restore.
func pgxOnly(key string) bool {
	switch key {
	case "statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode",
		"min_read_buffer_size", "servicefile":
		return true
	}
	return strings.HasPrefix(key, "pool_")
}

// WithDatabase returns dsn, as a keyword/value string, pointing at database
// name instead (same server, user and password).
func WithDatabase(dsn, name string) (string, error) {
	ps, err := parseDSN(dsn)
	if err != nil {
		return "", err
	}
	return formatDSN(set(ps, "dbname", name)), nil
}

// WithParams returns dsn, as a keyword/value string, with the given
// keywords set (user, password, dbname, ...).
func WithParams(dsn string, params map[string]string) (string, error) {
	ps, err := parseDSN(dsn)
	if err != nil {
		return "", err
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		ps = set(ps, k, params[k])
	}
	return formatDSN(ps), nil
}

// Redact returns dsn as a keyword/value string with any password replaced,
// safe for messages and logs; an unparsable DSN becomes a placeholder.
func Redact(dsn string) string {
	ps, err := parseDSN(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	for i := range ps {
		if ps[i].key == "password" {
			ps[i].value = "[redacted]"
		}
	}
	return formatDSN(ps)
}

// Password returns the password a DSN carries ("" for none).
func Password(dsn string) string {
	ps, err := parseDSN(dsn)
	if err != nil {
		return ""
	}
	pw := ""
	for _, p := range ps {
		if p.key == "password" {
			pw = p.value
		}
	}
	return pw
}

// libpqDSN splits dsn for a libpq client program: the connection string
// without password and pgx-only keys, pointed at database name when name is
// not "", and the password apart (for a PGPASSFILE).
func libpqDSN(dsn, name string) (conn, password string, err error) {
	ps, err := parseDSN(dsn)
	if err != nil {
		return "", "", err
	}
	password = Password(dsn)
	ps = without(ps, func(k string) bool { return k == "password" || pgxOnly(k) })
	if name != "" {
		ps = set(ps, "dbname", name)
	}
	return formatDSN(ps), password, nil
}

// Transport describes where a DSN connects and whether libpq would insist on
// TLS: Hosts are its host names (a leading "/" is a Unix socket directory;
// none means the local socket), SSLMode its sslmode ("prefer" when unset).
type Transport struct {
	Hosts   []string
	SSLMode string
}

// ParseTransport reads the hosts and sslmode of dsn.
func ParseTransport(dsn string) (Transport, error) {
	ps, err := parseDSN(dsn)
	if err != nil {
		return Transport{}, err
	}
	t := Transport{SSLMode: "prefer"}
	for _, p := range ps {
		switch p.key {
		case "host":
			for _, h := range strings.Split(p.value, ",") {
				if h = strings.TrimSpace(h); h != "" {
					t.Hosts = append(t.Hosts, h)
				}
			}
		case "sslmode":
			t.SSLMode = p.value
		}
	}
	return t, nil
}

// Encrypted reports whether libpq refuses a connection without TLS.
func (t Transport) Encrypted() bool {
	switch t.SSLMode {
	case "require", "verify-ca", "verify-full":
		return true
	}
	return false
}

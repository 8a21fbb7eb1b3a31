package config

import (
	"fmt"
	"math"
	"net/url"
	"strings"
)

// validateTracing checks the tracing section. The endpoint and ratio are
// checked even while tracing is disabled, so turning it on later cannot
// surface an old typo.
func (c *Config) validateTracing(p *problems) {
	t := c.Tracing
	if t.Endpoint != "" || t.Enabled {
		u, err := url.Parse(t.Endpoint)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			p.add("tracing.endpoint", "%q is not an OTLP/HTTP URL (want http(s)://host:port/v1/traces)", t.Endpoint)
		case u.User != nil:
			p.add("tracing.endpoint", "must not carry credentials; put them in tracing.headers")
		case u.RawQuery != "" || u.Fragment != "":
			p.add("tracing.endpoint", "must not have a query or fragment")
		}
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 || math.IsNaN(t.SampleRatio) {
		p.add("tracing.sample_ratio", "must be from 0 to 1, got %v", t.SampleRatio)
	}
	if t.Enabled && strings.TrimSpace(t.ServiceName) == "" {
		p.add("tracing.service_name", "must not be empty")
	}
	if t.Enabled && t.Timeout <= 0 {
		p.add("tracing.timeout", "must be positive")
	}
	if _, err := t.HeaderMap(); err != nil {
		p.add("tracing.headers", "%v", err)
	}
}

// HeaderMap parses Headers ("name=value,name2=value2"; values may be
// percent-encoded as in OTEL_EXPORTER_OTLP_HEADERS). Errors never quote a
// value: values are secrets.
func (t TracingConfig) HeaderMap() (map[string]string, error) {
	out := map[string]string{}
	for i, pair := range strings.Split(t.Headers, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		name, value, ok := strings.Cut(pair, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n:") {
			return nil, fmt.Errorf("entry %d is not name=value", i+1)
		}
		v, err := url.PathUnescape(strings.TrimSpace(value))
		if err != nil || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("entry %d (%s): invalid value", i+1, name)
		}
		out[name] = v
	}
	return out, nil
}

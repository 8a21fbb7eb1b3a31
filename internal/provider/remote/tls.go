package remote

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// clientTLS builds the TLS config for an https worker URL (nil for http):
// the worker's certificate verified against CAFile (else the system roots)
// for the URL's host name, and the client certificate when CertFile and
// KeyFile are set (mTLS). Only HTTP/1.1 is offered: the relay needs it.
func clientTLS(cfg Config, u *url.URL) (*tls.Config, error) {
	if u.Scheme != "https" {
		if cfg.CAFile != "" || cfg.CertFile != "" || cfg.KeyFile != "" {
			return nil, errs.New(errs.Invalid, "%s provider: TLS files are set but the url %q is not https", cfg.Name, u.Redacted())
		}
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "%s provider: read CA file %s", cfg.Name, cfg.CAFile)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errs.New(errs.Invalid, "%s provider: CA file %s holds no PEM certificate", cfg.Name, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errs.New(errs.Invalid, "%s provider: set both the client certificate and key files, or neither", cfg.Name)
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "%s provider: load client certificate", cfg.Name)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

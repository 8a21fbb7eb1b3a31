package worker

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// ServerTLS builds the worker's TLS config from a certificate and key file;
// with clientCAFile set, clients must present a certificate signed by one
// of its CAs (mTLS). Only HTTP/1.1 is offered: the agent relay is an
// HTTP/1.1 upgrade.
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errs.New(errs.Invalid, "worker TLS needs both a certificate and a key file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "worker TLS: load certificate %s", certFile)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"http/1.1"},
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "worker TLS: read client CA file %s", clientCAFile)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errs.New(errs.Invalid, "worker TLS: client CA file %s holds no PEM certificate", clientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

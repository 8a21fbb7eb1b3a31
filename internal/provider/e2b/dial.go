package e2b

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// sandboxHost is E2B's proxy host for a port of a sandbox:
// {port}-{sandboxID}.{domain} (the SDKs' getHost).
func sandboxHost(port int, runtimeID, domain string) string {
	return fmt.Sprintf("%d-%s.%s", port, runtimeID, domain)
}

// newAgentClient returns a client whose every connection is a TLS
// connection to the sandbox's agent port on E2B's proxy, upgraded with the
// agent token. The proxy forwards the upgrade to the agent's TokenListener;
// after 101 the bytes pass unchanged.
func (p *Provider) newAgentClient(sandboxID, runtimeID, domain string) *agent.Client {
	host := sandboxHost(agentPort, runtimeID, domain)
	tcfg := tlsConfig(p.cfg.TLS, host)
	token := p.agentToken(sandboxID, runtimeID)
	addr := net.JoinHostPort(host, "443")
	return agent.NewClient(func(ctx context.Context) (net.Conn, error) {
		raw, err := p.dial(ctx, "tcp", addr)
		if err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, errs.Wrap(errs.Timeout, err, "connecting to E2B sandbox %s timed out", runtimeID)
			}
			return nil, errs.Wrap(errs.Unavailable, err, "E2B sandbox proxy unreachable")
		}
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, errs.Wrap(errs.Unavailable, err, "TLS with E2B sandbox proxy")
		}
		return agent.DialUpgrade(ctx, tc, host, "/v1/agent", token, nil)
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

package e2bfake

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"
)

// serveProxy forwards a request for {port}-{id}.{domain} to that port in
// the sandbox, upgrades included, as E2B's client proxy does. Unknown
// sandboxes and closed ports are answered 502 with a JSON body (E2B's
// proxy answers 502 in both cases; its exact body is not in the spec).
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, id string, port int) {
	sb := s.lookup(id)
	if sb == nil {
		proxyError(w, id, port, "The sandbox was not found")
		return
	}
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(sb.ip, strconv.Itoa(port))}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := net.Dialer{Timeout: 5 * time.Second}
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				tc := &trackedConn{Conn: c, sb: sb}
				if !sb.track(tc) {
					c.Close()
					return nil, errGone
				}
				return tc, nil
			},
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			proxyError(w, id, port, "The sandbox is running but port is not open")
		},
	}
	rp.ServeHTTP(w, r)
}

func proxyError(w http.ResponseWriter, id string, port int, msg string) {
	writeJSON(w, http.StatusBadGateway, map[string]any{"message": msg, "sandboxId": id, "port": port, "code": 502})
}

// trackedConn leaves its sandbox's set when closed.
type trackedConn struct {
	net.Conn
	sb *sandbox
}

func (c *trackedConn) Close() error {
	c.sb.untrack(c)
	return c.Conn.Close()
}

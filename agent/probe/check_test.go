package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeouts of the real-I/O tests: generous for runs that should succeed or fail at once, so
// that a loaded machine does not turn them into timeouts; short only where a timeout is the
// point.
const (
	generousTimeout = 10 * time.Second
	shortTimeout    = 300 * time.Millisecond
)

// runCheck runs c once with the given timeout, as the Runner would.
func runCheck(t *testing.T, p *prober, c Check, timeout time.Duration) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.run(ctx, &c)
}

// hostPort splits a listener or server address into host and port.
func hostPort(t *testing.T, addr string) (string, int32) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("port %q: %v", port, err)
	}
	return host, int32(n)
}

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port := hostPort(t, l.Addr().String())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// checkResult compares a result with the wanted outcome; wantReason must be a prefix of the
// reason, "" for a success.
func checkResult(t *testing.T, got Result, wantOK bool, wantReason string) {
	t.Helper()
	if got.OK != wantOK || !strings.HasPrefix(got.Reason, wantReason) || (wantOK && got.Reason != "") {
		t.Fatalf("result = %+v, want OK=%v with reason starting %q", got, wantOK, wantReason)
	}
	if len(got.Reason) > MaxReasonBytes {
		t.Fatalf("reason is %d bytes, more than %d", len(got.Reason), MaxReasonBytes)
	}
}

func TestHTTPGet(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/moved-away", func(w http.ResponseWriter, r *http.Request) {
		// Another host: not followed, and the 302 itself counts as success.
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/moved-to-error", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/error", http.StatusFound)
	})
	mux.HandleFunc("/moved-to-ok", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/not-modified", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	})
	mux.HandleFunc("/unavailable", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "later", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "kubelet.local" || r.Header.Get("X-Probe") != "yes" || r.UserAgent() != userAgent {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("verbose") != "1" {
			w.WriteHeader(http.StatusBadRequest)
		}
	})
	release := make(chan struct{})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)

	host, port := hostPort(t, srv.Listener.Addr().String())
	_, tlsPort := hostPort(t, tlsSrv.Listener.Addr().String())
	tests := []struct {
		name       string
		action     HTTPGetAction
		timeout    time.Duration
		wantOK     bool
		wantReason string
	}{
		{name: "200", action: HTTPGetAction{Host: host, Port: port, Path: "/ok"}, wantOK: true},
		{name: "204", action: HTTPGetAction{Host: host, Port: port, Path: "/no-content"}, wantOK: true},
		{name: "302 off host is success", action: HTTPGetAction{Host: host, Port: port, Path: "/moved-away"}, wantOK: true},
		{name: "304", action: HTTPGetAction{Host: host, Port: port, Path: "/not-modified"}, wantOK: true},
		{name: "301 on host is followed", action: HTTPGetAction{Host: host, Port: port, Path: "/moved-to-ok"}, wantOK: true},
		{
			name:       "302 on host to a 500 is followed",
			action:     HTTPGetAction{Host: host, Port: port, Path: "/moved-to-error"},
			wantReason: "HTTP status 500",
		},
		{name: "404", action: HTTPGetAction{Host: host, Port: port, Path: "/missing"}, wantReason: "HTTP status 404"},
		{name: "500", action: HTTPGetAction{Host: host, Port: port, Path: "/error"}, wantReason: "HTTP status 500"},
		{name: "503", action: HTTPGetAction{Host: host, Port: port, Path: "/unavailable"}, wantReason: "HTTP status 503"},
		{
			name: "headers and host",
			action: HTTPGetAction{Host: host, Port: port, Path: "/headers", HTTPHeaders: []HTTPHeader{
				{Name: "Host", Value: "kubelet.local"}, {Name: "X-Probe", Value: "yes"},
			}},
			wantOK: true,
		},
		{name: "path with query", action: HTTPGetAction{Host: host, Port: port, Path: "/query?verbose=1"}, wantOK: true},
		{name: "path without slash", action: HTTPGetAction{Host: host, Port: port, Path: "ok"}, wantOK: true},
		{name: "default host", action: HTTPGetAction{Port: port, Path: "/ok"}, wantOK: true},
		{name: "https without CA check", action: HTTPGetAction{Scheme: SchemeHTTPS, Host: host, Port: tlsPort, Path: "/ok"}, wantOK: true},
		{
			name:       "slow server times out",
			action:     HTTPGetAction{Host: host, Port: port, Path: "/slow"},
			timeout:    shortTimeout,
			wantReason: reasonTimedOut,
		},
		{
			name:       "closed port",
			action:     HTTPGetAction{Host: "127.0.0.1", Port: closedPort(t), Path: "/"},
			wantReason: "connection refused",
		},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = generousTimeout
			}
			action := tc.action
			got := runCheck(t, p, Check{Name: "http", HTTPGet: &action}, timeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

func TestAPIServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer token":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/prefix/readyz":
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	// The caller's client carries the CA and the credentials; the check uses it as it is.
	withToken := *srv.Client()
	withToken.Transport = bearer{token: "token", next: withToken.Transport}
	client := &withToken
	base, err := url.JoinPath(srv.URL, "prefix")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		api        *APIServer
		path       string
		wantOK     bool
		wantReason string
	}{
		{name: "ready", api: &APIServer{URL: base + "/", Client: client}, wantOK: true},
		{name: "other path", api: &APIServer{URL: base, Client: client}, path: "/livez", wantReason: "HTTP status 500"},
		{name: "no credentials", api: &APIServer{URL: base, Client: srv.Client()}, wantReason: "HTTP status 401"},
		{name: "no client", api: nil, wantReason: "no API server client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, newProber(tc.api), Check{Name: "api", APIServer: &APIServerAction{Path: tc.path}}, generousTimeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

// bearer adds a bearer token, as client-go's transport does for a service account.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func TestTCPSocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	host, port := hostPort(t, l.Addr().String())
	tests := []struct {
		name       string
		action     TCPSocketAction
		wantOK     bool
		wantReason string
	}{
		{name: "open port", action: TCPSocketAction{Host: host, Port: port}, wantOK: true},
		{name: "default host", action: TCPSocketAction{Port: port}, wantOK: true},
		{name: "closed port", action: TCPSocketAction{Host: host, Port: closedPort(t)}, wantReason: "connection refused"},
		// An invalid name fails in the resolver without asking any server.
		{name: "unresolvable host", action: TCPSocketAction{Host: "no_such!host", Port: port}, wantReason: "cannot resolve host no_such!host"},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			action := tc.action
			got := runCheck(t, p, Check{Name: "tcp", TCPSocket: &action}, generousTimeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rt.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	notSocket := filepath.Join(dir, "plain")
	if err := os.WriteFile(notSocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		path       string
		wantOK     bool
		wantReason string
	}{
		{name: "listening", path: path, wantOK: true},
		{name: "missing", path: filepath.Join(dir, "gone.sock"), wantReason: "no such socket"},
		{name: "not a socket", path: notSocket, wantReason: "connection refused"},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := runCheck(t, p, Check{Name: "unix", UnixSocket: &UnixSocketAction{Path: tc.path}}, generousTimeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "short", in: "abc", n: 5, want: "abc"},
		{name: "exact", in: "abcde", n: 5, want: "abcde"},
		{name: "cut", in: "abcdef", n: 5, want: "abcde"},
		{name: "no split rune", in: "abcdé", n: 5, want: "abcd"},
		{name: "invalid bytes", in: "\xff\xff\xff\xff\xff\xff", n: 3, want: "\xff\xff\xff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := truncate(tc.in, tc.n); got != tc.want {
				t.Fatalf("truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}

package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// MaxReasonBytes bounds every failure reason, so that it fits in the gossip metadata.
const MaxReasonBytes = 100

// userAgent identifies haagent's requests in the logs of the checked servers.
const userAgent = "haagent-probe"

// maxBodyBytes is how much of a response body is read (and discarded) before closing it.
const maxBodyBytes = 10 << 10

// maxRedirects bounds the same-host redirects an httpGet check follows, as kubelet does.
const maxRedirects = 10

// Result is the outcome of one run of a check.
type Result struct {
	// OK is true when the check succeeded.
	OK bool
	// Reason says why the check failed, at most MaxReasonBytes; empty on success.
	Reason string
	// Duration is how long the run took, up to its timeout.
	Duration time.Duration
}

func success() Result { return Result{OK: true} }

func failure(format string, args ...any) Result {
	return Result{Reason: truncate(fmt.Sprintf(format, args...), MaxReasonBytes)}
}

// APIServer is how apiServer checks reach the Kubernetes API server, typically built from
// client-go's rest.InClusterConfig: URL from rest.Config.Host, Client from
// rest.HTTPClientFor (in-cluster CA and service account token).
type APIServer struct {
	// URL is the API server's base URL, e.g. "https://10.96.0.1:443".
	URL string
	// Client sends the requests; its redirect policy applies.
	Client *http.Client
}

// prober runs single checks. It holds no state between runs beyond its HTTP clients.
type prober struct {
	// http sends httpGet requests: no proxy, no keep-alive, no certificate checks, and only
	// same-host redirects, like kubelet's prober.
	http *http.Client
	// grpc sends grpc health calls (see grpc.go).
	grpc *http.Client
	// apiBase and api serve apiServer checks; api is nil when no API server was given.
	apiBase string
	api     *http.Client
}

func newProber(api *APIServer) *prober {
	transport := &http.Transport{
		Proxy:              nil,
		DisableKeepAlives:  true,
		DisableCompression: true,
		// kubelet does not verify the certificates of probed endpoints either; the
		// check asks "is it up", not "is it who it claims to be".
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DialContext:     (&net.Dialer{}).DialContext,
	}
	p := &prober{
		http: &http.Client{Transport: transport, CheckRedirect: sameHostRedirects},
		grpc: newGRPCClient(),
	}
	if api != nil {
		p.apiBase = strings.TrimSuffix(api.URL, "/")
		p.api = api.Client
	}
	return p
}

// sameHostRedirects follows redirects that stay on the same host; a redirect elsewhere is
// not followed and its 3xx response stands as the result (a success), as with kubelet.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	return nil
}

// run performs one run of c. ctx carries the run's timeout.
func (p *prober) run(ctx context.Context, c *Check) Result {
	switch {
	case c.HTTPGet != nil:
		return p.httpGet(ctx, c.HTTPGet)
	case c.TCPSocket != nil:
		return dialCheck(ctx, "tcp", net.JoinHostPort(orDefault(c.TCPSocket.Host, defaultHost), strconv.Itoa(int(c.TCPSocket.Port))))
	case c.UnixSocket != nil:
		return dialCheck(ctx, "unix", c.UnixSocket.Path)
	case c.Exec != nil:
		return execCheck(ctx, c.Exec.Command)
	case c.GRPC != nil:
		return p.grpcCheck(ctx, c.GRPC)
	case c.APIServer != nil:
		return p.apiServerCheck(ctx, c.APIServer)
	}
	return failure("no action set")
}

func (p *prober) httpGet(ctx context.Context, a *HTTPGetAction) Result {
	scheme := "http"
	if a.Scheme == SchemeHTTPS {
		scheme = "https"
	}
	path := a.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(path)
	if err != nil {
		return failure("bad path: %v", err)
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(orDefault(a.Host, defaultHost), strconv.Itoa(int(a.Port)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return failure("bad request: %v", err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "*/*")
	for _, h := range a.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	return doHTTP(ctx, p.http, req)
}

func (p *prober) apiServerCheck(ctx context.Context, a *APIServerAction) Result {
	if p.api == nil {
		return failure("no API server client")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.apiBase+orDefault(a.Path, "/readyz"), nil)
	if err != nil {
		return failure("bad request: %v", err)
	}
	req.Header.Set("User-Agent", userAgent)
	return doHTTP(ctx, p.api, req)
}

func doHTTP(ctx context.Context, client *http.Client, req *http.Request) Result {
	resp, err := client.Do(req)
	if err != nil {
		return failure("%s", describeErr(ctx, err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return success()
	}
	return failure("HTTP status %d", resp.StatusCode)
}

func dialCheck(ctx context.Context, network, addr string) Result {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return failure("%s", describeErr(ctx, err))
	}
	_ = conn.Close()
	return success()
}

// describeErr turns a network error into a short, stable reason: the same fault gives the
// same text, so that a verdict does not change with every port number or address.
func describeErr(ctx context.Context, err error) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "cannot resolve host " + dnsErr.Name
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ENOENT):
		return "no such socket"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return "timed out"
	}
	// Drop the "Get \"url\": " wrapping: the check name already says what was asked.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return err.Error()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

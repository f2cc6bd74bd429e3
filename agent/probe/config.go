package probe

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Kubernetes probe defaults, applied to a check field left at zero.
const (
	defaultPeriod           = 10 * time.Second
	defaultTimeout          = 1 * time.Second
	defaultSuccessThreshold = 1
	defaultFailureThreshold = 3
)

// Lower bounds of the sub-second timing fields. Below them a check costs more than it tells.
const (
	minPeriodMilliseconds  = 100
	minTimeoutMilliseconds = 10
)

// minNotReadyFailoverAfter keeps a brief not-ready spell (a kubelet restart, a slow API
// server) from ever turning into a failover.
const minNotReadyFailoverAfter = 10 * time.Second

// defaultHost is where httpGet and tcpSocket checks connect when host is empty. The agent runs
// with the node's network, so loopback is the node itself (kubelet would use the pod IP).
const defaultHost = "127.0.0.1"

// maxNameLen bounds a check name: it becomes a metric label value and part of the gossip
// metadata, so it is kept short and plain ([a-z0-9-]).
const maxNameLen = 40

// Config configures the node readiness Runner.
type Config struct {
	// Checks are the node readiness checks, read from the `checks:` list of the agent's
	// config file. Their order matters: the verdict names the first failing check in this
	// order, so put the most telling check (usually the kubelet) first. An empty list makes
	// the node always ready.
	Checks []Check `json:"checks"`

	// MaxConcurrent bounds how many checks run at the same instant (flag
	// --check-max-concurrent). Waiting for a free slot counts against a check's timeout, so
	// a value below the number of slow checks turns load into failures; the initial stagger
	// keeps the need small. Must be at least 1.
	MaxConcurrent int

	// NotReadyFailoverAfter is how long a node may stay alive on gossip but not ready before
	// the failover code may fail it over (flag --not-ready-failover-after). 0 turns this
	// off, which is the default: an API server outage makes every node not ready at once.
	// When set it must be at least 10s. The rule itself is failover.Decider.Decide, which
	// counts the spell from when the coordinator first saw the node not ready.
	NotReadyFailoverAfter time.Duration
}

// DefaultConfig returns the configuration used when the agent's config file says nothing:
// DefaultNodeChecks, at most 4 checks at once, not-ready failover off.
func DefaultConfig() Config {
	return Config{
		Checks:                DefaultNodeChecks(),
		MaxConcurrent:         4,
		NotReadyFailoverAfter: 0,
	}
}

// DefaultNodeChecks returns the checks that decide whether a node is ready when the config
// file lists none: the kubelet's healthz endpoint, the containerd socket, and the API
// server's /readyz through the client given to NewRunner.
func DefaultNodeChecks() []Check {
	return []Check{
		{
			Name:             "kubelet",
			HTTPGet:          &HTTPGetAction{Scheme: SchemeHTTP, Host: defaultHost, Port: 10248, Path: "/healthz"},
			PeriodSeconds:    5,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
		},
		{
			Name:             "container-runtime",
			UnixSocket:       &UnixSocketAction{Path: "/run/containerd/containerd.sock"},
			PeriodSeconds:    5,
			TimeoutSeconds:   1,
			FailureThreshold: 3,
		},
		{
			// A slower period: every node asks the API server, and an outage there is
			// a cluster-wide event rather than news about this node. 12 s keeps an
			// idle agent under 0.1 API requests a second; /readyz answers in
			// milliseconds, so 3 s is ample, and the check still fails within 15 s
			// of an outage (the fence bound's term).
			Name:             "apiserver",
			APIServer:        &APIServerAction{Path: "/readyz"},
			PeriodSeconds:    12,
			TimeoutSeconds:   3,
			FailureThreshold: 3,
		},
	}
}

// Check is one health check, with the fields and meanings of a Kubernetes corev1.Probe.
// Exactly one action (httpGet, tcpSocket, exec, grpc, unixSocket, apiServer) must be set.
//
// Timing follows corev1: a zero field takes the Kubernetes default (period 10s, timeout 1s,
// successThreshold 1, failureThreshold 3). For sub-second timing, periodMilliseconds and
// timeoutMilliseconds may be used instead of periodSeconds and timeoutSeconds (not both
// forms of the same setting). When only the period is given in milliseconds and it is
// shorter than the default timeout, the timeout defaults to the period.
type Check struct {
	// Name identifies the check in the verdict, in logs and as a metric label value.
	// Required, unique, matching [a-z0-9-]{1,40}.
	Name string `json:"name"`

	// HTTPGet is an HTTP GET request; a 2xx or 3xx status is a success.
	HTTPGet *HTTPGetAction `json:"httpGet,omitempty"`
	// TCPSocket succeeds when a TCP connection can be opened.
	TCPSocket *TCPSocketAction `json:"tcpSocket,omitempty"`
	// Exec runs a command; exit status 0 is a success.
	Exec *ExecAction `json:"exec,omitempty"`
	// GRPC calls grpc.health.v1.Health/Check; SERVING is a success.
	GRPC *GRPCAction `json:"grpc,omitempty"`
	// UnixSocket (an extension beyond corev1) succeeds when a unix socket accepts a
	// connection, e.g. the container runtime's.
	UnixSocket *UnixSocketAction `json:"unixSocket,omitempty"`
	// APIServer (an extension beyond corev1) is an HTTP GET to the Kubernetes API server
	// through the client given to NewRunner (in-cluster CA and credentials).
	APIServer *APIServerAction `json:"apiServer,omitempty"`

	// InitialDelaySeconds delays the first run after the runner starts; the random
	// stagger is added on top.
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// TimeoutSeconds bounds one run; a run still going then is a failure. Default 1.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// PeriodSeconds is the time between runs. Default 10.
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// SuccessThreshold is how many consecutive successes turn a failing check into a
	// passing one. Default 1.
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
	// FailureThreshold is how many consecutive failures turn a passing check into a
	// failing one. Default 3.
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// PeriodMilliseconds (an extension beyond corev1) replaces PeriodSeconds for
	// sub-second periods. At least 100.
	PeriodMilliseconds int32 `json:"periodMilliseconds,omitempty"`
	// TimeoutMilliseconds (an extension beyond corev1) replaces TimeoutSeconds for
	// sub-second timeouts. At least 10.
	TimeoutMilliseconds int32 `json:"timeoutMilliseconds,omitempty"`
}

// URI schemes of an httpGet check, spelt as in corev1.
const (
	SchemeHTTP  = "HTTP"
	SchemeHTTPS = "HTTPS"
)

// HTTPGetAction is corev1.HTTPGetAction without named ports: there is no container to name
// them. With HTTPS the server's certificate is not verified, as kubelet does for probes;
// use apiServer to reach the API server with its CA.
type HTTPGetAction struct {
	// Scheme is HTTP (default) or HTTPS.
	Scheme string `json:"scheme,omitempty"`
	// Host to connect to; default 127.0.0.1, the node itself.
	Host string `json:"host,omitempty"`
	// Port to connect to, 1..65535.
	Port int32 `json:"port"`
	// Path to request, default "/". It may carry a query.
	Path string `json:"path,omitempty"`
	// HTTPHeaders are added to the request. A "Host" header sets the request's host.
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is one request header of an httpGet check.
type HTTPHeader struct {
	// Name of the header.
	Name string `json:"name"`
	// Value of the header.
	Value string `json:"value"`
}

// TCPSocketAction is corev1.TCPSocketAction without named ports.
type TCPSocketAction struct {
	// Host to connect to; default 127.0.0.1.
	Host string `json:"host,omitempty"`
	// Port to connect to, 1..65535.
	Port int32 `json:"port"`
}

// ExecAction is corev1.ExecAction. The command runs directly (no shell unless it names one)
// in its own process group; on timeout the whole group is killed, so children a shell
// started do not outlive the check.
type ExecAction struct {
	// Command is the program and its arguments. Required.
	Command []string `json:"command"`
}

// GRPCAction is corev1.GRPCAction. The server is reached on 127.0.0.1 without TLS, as
// kubelet reaches a pod.
type GRPCAction struct {
	// Port of the gRPC server, 1..65535.
	Port int32 `json:"port"`
	// Service is the service name sent in the health request; empty asks about the
	// server as a whole.
	Service string `json:"service,omitempty"`
}

// UnixSocketAction connects to a unix socket (an extension beyond corev1).
type UnixSocketAction struct {
	// Path of the socket, absolute.
	Path string `json:"path"`
}

// APIServerAction requests a path of the Kubernetes API server (an extension beyond
// corev1); 2xx or 3xx is a success.
type APIServerAction struct {
	// Path to request, default "/readyz".
	Path string `json:"path,omitempty"`
}

// ParseChecks reads a YAML document whose only key is `checks:`. Parsing is strict: an
// unknown or duplicated field is an error, so a typo is not silently ignored. It does not
// validate; call Config.Validate. An agent config file with other sections should instead
// declare a field `Checks []probe.Check` with tag `json:"checks"` and decode the whole file
// with yaml.UnmarshalStrict, which is just as strict for the checks.
func ParseChecks(data []byte) ([]Check, error) {
	var doc struct {
		Checks []Check `json:"checks"`
	}
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("probe: parse checks: %w", err)
	}
	return doc.Checks, nil
}

// Validate reports the first problem of the configuration, naming the flag or the check and
// field at fault and the bound it breaks.
func (c Config) Validate() error {
	if c.MaxConcurrent < 1 {
		return fmt.Errorf("probe: --check-max-concurrent (%d) must be at least 1", c.MaxConcurrent)
	}
	if c.NotReadyFailoverAfter < 0 || (c.NotReadyFailoverAfter > 0 && c.NotReadyFailoverAfter < minNotReadyFailoverAfter) {
		return fmt.Errorf("probe: --not-ready-failover-after (%s) must be 0 (off) or at least %s",
			c.NotReadyFailoverAfter, minNotReadyFailoverAfter)
	}
	seen := make(map[string]int, len(c.Checks))
	for i := range c.Checks {
		ch := &c.Checks[i]
		if ch.Name == "" {
			return fmt.Errorf("probe: checks[%d]: name must not be empty", i)
		}
		if !validName(ch.Name) {
			return fmt.Errorf("probe: checks[%d] %q: name must match [a-z0-9-]{1,40}", i, ch.Name)
		}
		if j, dup := seen[ch.Name]; dup {
			return fmt.Errorf("probe: checks[%d] %q: name is already used by checks[%d]", i, ch.Name, j)
		}
		seen[ch.Name] = i
		if msg := ch.problem(); msg != "" {
			return fmt.Errorf("probe: checks[%d] %q: %s", i, ch.Name, msg)
		}
	}
	return nil
}

// problem returns what is wrong with one check, or "".
func (c *Check) problem() string {
	set := 0
	for _, isSet := range []bool{c.HTTPGet != nil, c.TCPSocket != nil, c.Exec != nil, c.GRPC != nil, c.UnixSocket != nil, c.APIServer != nil} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		return "exactly one of httpGet, tcpSocket, exec, grpc, unixSocket, apiServer must be set"
	}
	if msg := c.actionProblem(); msg != "" {
		return msg
	}
	return c.timingProblem()
}

func (c *Check) actionProblem() string {
	switch {
	case c.HTTPGet != nil:
		a := c.HTTPGet
		if a.Scheme != "" && a.Scheme != SchemeHTTP && a.Scheme != SchemeHTTPS {
			return fmt.Sprintf("httpGet.scheme (%q) must be HTTP or HTTPS", a.Scheme)
		}
		if msg := portProblem("httpGet.port", a.Port); msg != "" {
			return msg
		}
		if _, err := url.Parse(a.Path); err != nil {
			return fmt.Sprintf("httpGet.path (%q) must be a valid URL path", a.Path)
		}
		for i, h := range a.HTTPHeaders {
			if !validHeaderName(h.Name) {
				return fmt.Sprintf("httpGet.httpHeaders[%d].name (%q) must be a valid HTTP header name", i, h.Name)
			}
		}
	case c.TCPSocket != nil:
		return portProblem("tcpSocket.port", c.TCPSocket.Port)
	case c.Exec != nil:
		if len(c.Exec.Command) == 0 || c.Exec.Command[0] == "" {
			return "exec.command must name a program"
		}
	case c.GRPC != nil:
		return portProblem("grpc.port", c.GRPC.Port)
	case c.UnixSocket != nil:
		if !strings.HasPrefix(c.UnixSocket.Path, "/") {
			return fmt.Sprintf("unixSocket.path (%q) must be an absolute path", c.UnixSocket.Path)
		}
	case c.APIServer != nil:
		if p := c.APIServer.Path; p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Sprintf("apiServer.path (%q) must start with /", p)
		}
	}
	return ""
}

func (c *Check) timingProblem() string {
	switch {
	case c.InitialDelaySeconds < 0:
		return fmt.Sprintf("initialDelaySeconds (%d) must be at least 0", c.InitialDelaySeconds)
	case c.PeriodSeconds < 0:
		return fmt.Sprintf("periodSeconds (%d) must be at least 1", c.PeriodSeconds)
	case c.TimeoutSeconds < 0:
		return fmt.Sprintf("timeoutSeconds (%d) must be at least 1", c.TimeoutSeconds)
	case c.SuccessThreshold < 0:
		return fmt.Sprintf("successThreshold (%d) must be at least 1", c.SuccessThreshold)
	case c.FailureThreshold < 0:
		return fmt.Sprintf("failureThreshold (%d) must be at least 1", c.FailureThreshold)
	case c.PeriodSeconds > 0 && c.PeriodMilliseconds != 0:
		return "set periodSeconds or periodMilliseconds, not both"
	case c.TimeoutSeconds > 0 && c.TimeoutMilliseconds != 0:
		return "set timeoutSeconds or timeoutMilliseconds, not both"
	case c.PeriodMilliseconds != 0 && c.PeriodMilliseconds < minPeriodMilliseconds:
		return fmt.Sprintf("periodMilliseconds (%d) must be at least %d", c.PeriodMilliseconds, minPeriodMilliseconds)
	case c.TimeoutMilliseconds != 0 && c.TimeoutMilliseconds < minTimeoutMilliseconds:
		return fmt.Sprintf("timeoutMilliseconds (%d) must be at least %d", c.TimeoutMilliseconds, minTimeoutMilliseconds)
	}
	t := c.timing()
	if t.timeout > t.period {
		// A run never overlaps the next one of the same check (the next tick waits), so a
		// timeout equal to the period is fine, as with kubelet's period 1s, timeout 1s.
		return fmt.Sprintf("%s must be less than or equal to %s", c.timeoutField(), c.periodField())
	}
	return ""
}

// timeoutField and periodField show the setting as the user wrote it, or its default.
func (c *Check) timeoutField() string {
	if c.TimeoutMilliseconds != 0 {
		return fmt.Sprintf("timeoutMilliseconds (%d)", c.TimeoutMilliseconds)
	}
	return fmt.Sprintf("timeoutSeconds (%d)", int64(c.timing().timeout/time.Second))
}

func (c *Check) periodField() string {
	if c.PeriodMilliseconds != 0 {
		return fmt.Sprintf("periodMilliseconds (%d)", c.PeriodMilliseconds)
	}
	return fmt.Sprintf("periodSeconds (%d)", int64(c.timing().period/time.Second))
}

// FirstFailureWithin is the longest a check takes, once its target stopped
// answering, to record a failed run: up to a period before the next run,
// then the run's timeout.
func (c *Check) FirstFailureWithin() time.Duration {
	t := c.timing()
	return t.period + t.timeout
}

// timing is a check's schedule with the defaults applied.
type timing struct {
	initialDelay     time.Duration
	period           time.Duration
	timeout          time.Duration
	successThreshold int
	failureThreshold int
}

func (c *Check) timing() timing {
	t := timing{
		initialDelay:     time.Duration(c.InitialDelaySeconds) * time.Second,
		period:           defaultPeriod,
		timeout:          defaultTimeout,
		successThreshold: defaultSuccessThreshold,
		failureThreshold: defaultFailureThreshold,
	}
	switch {
	case c.PeriodMilliseconds > 0:
		t.period = time.Duration(c.PeriodMilliseconds) * time.Millisecond
	case c.PeriodSeconds > 0:
		t.period = time.Duration(c.PeriodSeconds) * time.Second
	}
	switch {
	case c.TimeoutMilliseconds > 0:
		t.timeout = time.Duration(c.TimeoutMilliseconds) * time.Millisecond
	case c.TimeoutSeconds > 0:
		t.timeout = time.Duration(c.TimeoutSeconds) * time.Second
	case c.PeriodMilliseconds > 0 && t.period < t.timeout:
		t.timeout = t.period
	}
	if c.SuccessThreshold > 0 {
		t.successThreshold = int(c.SuccessThreshold)
	}
	if c.FailureThreshold > 0 {
		t.failureThreshold = int(c.FailureThreshold)
	}
	return t
}

func portProblem(field string, port int32) string {
	if port < 1 || port > 65535 {
		return fmt.Sprintf("%s (%d) must be between 1 and 65535", field, port)
	}
	return ""
}

// validName reports whether s matches [a-z0-9-]{1,maxNameLen}.
func validName(s string) bool {
	if len(s) < 1 || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '-' {
			return false
		}
	}
	return true
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

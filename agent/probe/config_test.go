package probe

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// validCheck returns a check that passes validation, for cases to break one field of.
func validCheck(name string) Check {
	return Check{Name: name, TCPSocket: &TCPSocketAction{Port: 10250}}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string // "" means valid
	}{
		{name: "default config", mutate: func(*Config) {}},
		{name: "no checks", mutate: func(c *Config) { c.Checks = nil }},
		{
			name:   "max concurrent zero",
			mutate: func(c *Config) { c.MaxConcurrent = 0 },
			want:   "probe: --check-max-concurrent (0) must be at least 1",
		},
		{
			name:   "not ready failover negative",
			mutate: func(c *Config) { c.NotReadyFailoverAfter = -time.Second },
			want:   "probe: --not-ready-failover-after (-1s) must be 0 (off) or at least 10s",
		},
		{
			name:   "not ready failover too short",
			mutate: func(c *Config) { c.NotReadyFailoverAfter = 5 * time.Second },
			want:   "probe: --not-ready-failover-after (5s) must be 0 (off) or at least 10s",
		},
		{name: "not ready failover on", mutate: func(c *Config) { c.NotReadyFailoverAfter = time.Minute }},
		{
			name:   "empty name",
			mutate: func(c *Config) { c.Checks[1].Name = "" },
			want:   "probe: checks[1]: name must not be empty",
		},
		{
			name:   "name with capitals",
			mutate: func(c *Config) { c.Checks[0].Name = "Kubelet" },
			want:   `probe: checks[0] "Kubelet": name must match [a-z0-9-]{1,40}`,
		},
		{
			name:   "name too long",
			mutate: func(c *Config) { c.Checks[0].Name = strings.Repeat("a", 41) },
			want:   `probe: checks[0] "` + strings.Repeat("a", 41) + `": name must match [a-z0-9-]{1,40}`,
		},
		{
			name:   "duplicate name",
			mutate: func(c *Config) { c.Checks[2].Name = "kubelet" },
			want:   `probe: checks[2] "kubelet": name is already used by checks[0]`,
		},
		{
			name:   "no action",
			mutate: func(c *Config) { c.Checks[0] = Check{Name: "x"} },
			want:   `probe: checks[0] "x": exactly one of httpGet, tcpSocket, exec, grpc, unixSocket, apiServer must be set`,
		},
		{
			name: "two actions",
			mutate: func(c *Config) {
				c.Checks[0].TCPSocket = &TCPSocketAction{Port: 1}
			},
			want: `probe: checks[0] "kubelet": exactly one of httpGet, tcpSocket, exec, grpc, unixSocket, apiServer must be set`,
		},
		{
			name:   "http port zero",
			mutate: func(c *Config) { c.Checks[0].HTTPGet.Port = 0 },
			want:   `probe: checks[0] "kubelet": httpGet.port (0) must be between 1 and 65535`,
		},
		{
			name:   "tcp port too big",
			mutate: func(c *Config) { c.Checks[0] = Check{Name: "t", TCPSocket: &TCPSocketAction{Port: 65536}} },
			want:   `probe: checks[0] "t": tcpSocket.port (65536) must be between 1 and 65535`,
		},
		{
			name:   "grpc port negative",
			mutate: func(c *Config) { c.Checks[0] = Check{Name: "g", GRPC: &GRPCAction{Port: -1}} },
			want:   `probe: checks[0] "g": grpc.port (-1) must be between 1 and 65535`,
		},
		{
			name:   "lowercase scheme",
			mutate: func(c *Config) { c.Checks[0].HTTPGet.Scheme = "https" },
			want:   `probe: checks[0] "kubelet": httpGet.scheme ("https") must be HTTP or HTTPS`,
		},
		{
			name: "bad header name",
			mutate: func(c *Config) {
				c.Checks[0].HTTPGet.HTTPHeaders = []HTTPHeader{{Name: "X-Ok", Value: "1"}, {Name: "bad header", Value: "1"}}
			},
			want: `probe: checks[0] "kubelet": httpGet.httpHeaders[1].name ("bad header") must be a valid HTTP header name`,
		},
		{
			name:   "empty command",
			mutate: func(c *Config) { c.Checks[0] = Check{Name: "e", Exec: &ExecAction{}} },
			want:   `probe: checks[0] "e": exec.command must name a program`,
		},
		{
			name:   "relative socket path",
			mutate: func(c *Config) { c.Checks[1].UnixSocket.Path = "containerd.sock" },
			want:   `probe: checks[1] "container-runtime": unixSocket.path ("containerd.sock") must be an absolute path`,
		},
		{
			name:   "api path without slash",
			mutate: func(c *Config) { c.Checks[2].APIServer.Path = "readyz" },
			want:   `probe: checks[2] "apiserver": apiServer.path ("readyz") must start with /`,
		},
		{
			name:   "timeout above period",
			mutate: func(c *Config) { c.Checks[2].TimeoutSeconds, c.Checks[2].PeriodSeconds = 5, 2 },
			want:   `probe: checks[2] "apiserver": timeoutSeconds (5) must be less than or equal to periodSeconds (2)`,
		},
		{
			name:   "timeout equal to period",
			mutate: func(c *Config) { c.Checks[0].TimeoutSeconds, c.Checks[0].PeriodSeconds = 1, 1 },
		},
		{
			name: "timeout above default period",
			mutate: func(c *Config) {
				c.Checks[0].TimeoutSeconds, c.Checks[0].PeriodSeconds = 11, 0
			},
			want: `probe: checks[0] "kubelet": timeoutSeconds (11) must be less than or equal to periodSeconds (10)`,
		},
		{
			name: "timeout seconds above period milliseconds",
			mutate: func(c *Config) {
				c.Checks[0].PeriodSeconds, c.Checks[0].PeriodMilliseconds = 0, 500
				c.Checks[0].TimeoutSeconds = 1
			},
			want: `probe: checks[0] "kubelet": timeoutSeconds (1) must be less than or equal to periodMilliseconds (500)`,
		},
		{
			name: "timeout milliseconds above period milliseconds",
			mutate: func(c *Config) {
				c.Checks[0].PeriodSeconds, c.Checks[0].PeriodMilliseconds = 0, 200
				c.Checks[0].TimeoutSeconds, c.Checks[0].TimeoutMilliseconds = 0, 300
			},
			want: `probe: checks[0] "kubelet": timeoutMilliseconds (300) must be less than or equal to periodMilliseconds (200)`,
		},
		{
			name: "sub-second period with default timeout",
			mutate: func(c *Config) {
				c.Checks[0].PeriodSeconds, c.Checks[0].PeriodMilliseconds = 0, 250
				c.Checks[0].TimeoutSeconds = 0
			},
		},
		{
			name:   "both period fields",
			mutate: func(c *Config) { c.Checks[0].PeriodMilliseconds = 500 },
			want:   `probe: checks[0] "kubelet": set periodSeconds or periodMilliseconds, not both`,
		},
		{
			name:   "both timeout fields",
			mutate: func(c *Config) { c.Checks[0].TimeoutMilliseconds = 500 },
			want:   `probe: checks[0] "kubelet": set timeoutSeconds or timeoutMilliseconds, not both`,
		},
		{
			name: "period milliseconds too small",
			mutate: func(c *Config) {
				c.Checks[0].PeriodSeconds, c.Checks[0].PeriodMilliseconds = 0, 50
			},
			want: `probe: checks[0] "kubelet": periodMilliseconds (50) must be at least 100`,
		},
		{
			name: "timeout milliseconds too small",
			mutate: func(c *Config) {
				c.Checks[0].TimeoutSeconds, c.Checks[0].TimeoutMilliseconds = 0, 5
			},
			want: `probe: checks[0] "kubelet": timeoutMilliseconds (5) must be at least 10`,
		},
		{
			name:   "negative success threshold",
			mutate: func(c *Config) { c.Checks[0].SuccessThreshold = -1 },
			want:   `probe: checks[0] "kubelet": successThreshold (-1) must be at least 1`,
		},
		{
			name:   "negative failure threshold",
			mutate: func(c *Config) { c.Checks[1].FailureThreshold = -2 },
			want:   `probe: checks[1] "container-runtime": failureThreshold (-2) must be at least 1`,
		},
		{
			name:   "negative initial delay",
			mutate: func(c *Config) { c.Checks[0].InitialDelaySeconds = -1 },
			want:   `probe: checks[0] "kubelet": initialDelaySeconds (-1) must be at least 0`,
		},
		{
			name:   "negative period",
			mutate: func(c *Config) { c.Checks[0].PeriodSeconds = -1 },
			want:   `probe: checks[0] "kubelet": periodSeconds (-1) must be at least 1`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %q, want nil", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate() = nil, want %q", tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Fatalf("Validate() = %q\n                want %q", err, tc.want)
			}
		})
	}
}

func TestDefaultConfig_doesNotShareChecks(t *testing.T) {
	a := DefaultConfig()
	a.Checks[0].HTTPGet.Port = 1
	if b := DefaultConfig(); b.Checks[0].HTTPGet.Port != 10248 {
		t.Fatalf("DefaultConfig shares state between calls: port %d", b.Checks[0].HTTPGet.Port)
	}
}

func TestCheckTiming(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  timing
	}{
		{
			name:  "kubernetes defaults",
			check: validCheck("a"),
			want:  timing{period: 10 * time.Second, timeout: time.Second, successThreshold: 1, failureThreshold: 3},
		},
		{
			name: "seconds",
			check: Check{InitialDelaySeconds: 4, PeriodSeconds: 3, TimeoutSeconds: 2, SuccessThreshold: 2,
				FailureThreshold: 5},
			want: timing{initialDelay: 4 * time.Second, period: 3 * time.Second, timeout: 2 * time.Second,
				successThreshold: 2, failureThreshold: 5},
		},
		{
			name:  "milliseconds",
			check: Check{PeriodMilliseconds: 500, TimeoutMilliseconds: 200},
			want:  timing{period: 500 * time.Millisecond, timeout: 200 * time.Millisecond, successThreshold: 1, failureThreshold: 3},
		},
		{
			name:  "short period caps the default timeout",
			check: Check{PeriodMilliseconds: 300},
			want:  timing{period: 300 * time.Millisecond, timeout: 300 * time.Millisecond, successThreshold: 1, failureThreshold: 3},
		},
		{
			name:  "long period in milliseconds keeps the default timeout",
			check: Check{PeriodMilliseconds: 1500},
			want:  timing{period: 1500 * time.Millisecond, timeout: time.Second, successThreshold: 1, failureThreshold: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.check.timing(); got != tc.want {
				t.Fatalf("timing() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseChecks(t *testing.T) {
	const doc = `
checks:
- name: kubelet
  httpGet:
    scheme: HTTPS
    host: 127.0.0.1
    port: 10248
    path: /healthz
    httpHeaders:
    - name: X-Probe
      value: haagent
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 3
- name: runtime
  unixSocket:
    path: /run/containerd/containerd.sock
  periodMilliseconds: 500
  timeoutMilliseconds: 200
- name: script
  exec:
    command: ["sh", "-c", "exit 0"]
  initialDelaySeconds: 3
  successThreshold: 2
- name: etcd
  grpc:
    port: 2379
    service: etcd
- name: ssh
  tcpSocket:
    port: 22
- name: apiserver
  apiServer:
    path: /livez
`
	want := []Check{
		{
			Name: "kubelet",
			HTTPGet: &HTTPGetAction{Scheme: "HTTPS", Host: "127.0.0.1", Port: 10248, Path: "/healthz",
				HTTPHeaders: []HTTPHeader{{Name: "X-Probe", Value: "haagent"}}},
			PeriodSeconds: 5, TimeoutSeconds: 2, FailureThreshold: 3,
		},
		{
			Name:               "runtime",
			UnixSocket:         &UnixSocketAction{Path: "/run/containerd/containerd.sock"},
			PeriodMilliseconds: 500, TimeoutMilliseconds: 200,
		},
		{
			Name:                "script",
			Exec:                &ExecAction{Command: []string{"sh", "-c", "exit 0"}},
			InitialDelaySeconds: 3, SuccessThreshold: 2,
		},
		{Name: "etcd", GRPC: &GRPCAction{Port: 2379, Service: "etcd"}},
		{Name: "ssh", TCPSocket: &TCPSocketAction{Port: 22}},
		{Name: "apiserver", APIServer: &APIServerAction{Path: "/livez"}},
	}
	got, err := ParseChecks([]byte(doc))
	if err != nil {
		t.Fatalf("ParseChecks: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseChecks =\n%#v\nwant\n%#v", got, want)
	}
	cfg := DefaultConfig()
	cfg.Checks = got
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestParseChecks_strict(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // a part of the error
	}{
		{
			name: "misspelt field",
			doc:  "checks:\n- name: a\n  tcpSocket: {port: 1}\n  periodSecond: 5\n",
			want: `unknown field "periodSecond"`,
		},
		{
			name: "unknown nested field",
			doc:  "checks:\n- name: a\n  httpGet: {port: 1, paht: /x}\n",
			want: `unknown field "paht"`,
		},
		{
			name: "unknown top-level key",
			doc:  "checks: []\nchecsk: []\n",
			want: `unknown field "checsk"`,
		},
		{
			name: "duplicate key",
			doc:  "checks:\n- name: a\n  name: b\n  tcpSocket: {port: 1}\n",
			want: `"name" already set`,
		},
		{
			name: "named port",
			doc:  "checks:\n- name: a\n  tcpSocket: {port: http}\n",
			want: "cannot unmarshal string",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseChecks([]byte(tc.doc))
			if err == nil {
				t.Fatalf("ParseChecks = nil error, want one containing %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), "probe: parse checks: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseChecks error = %q, want one starting %q and containing %q", err, "probe: parse checks: ", tc.want)
			}
		})
	}
}

func TestPeerConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *PeerConfig)
		want   string
	}{
		{name: "default", mutate: func(*PeerConfig) {}},
		{
			name:   "port zero",
			mutate: func(c *PeerConfig) { c.Port = 0 },
			want:   "probe: --peer-check-port (0) must be between 1 and 65535",
		},
		{
			name:   "port too big",
			mutate: func(c *PeerConfig) { c.Port = 70000 },
			want:   "probe: --peer-check-port (70000) must be between 1 and 65535",
		},
		{
			name:   "timeout too short",
			mutate: func(c *PeerConfig) { c.Timeout = time.Millisecond },
			want:   "probe: --peer-check-timeout (1ms) must be between 10ms and 10s",
		},
		{
			name:   "timeout too long",
			mutate: func(c *PeerConfig) { c.Timeout = time.Minute },
			want:   "probe: --peer-check-timeout (1m0s) must be between 10ms and 10s",
		},
		{
			name:   "max concurrent zero",
			mutate: func(c *PeerConfig) { c.MaxConcurrent = 0 },
			want:   "probe: --peer-check-max-concurrent (0) must be at least 1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultPeerConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("Validate() = %q, want %q", got, tc.want)
			}
		})
	}
}

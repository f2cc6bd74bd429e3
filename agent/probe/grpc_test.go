package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// The grpc check against grpc-go's own health server: the client is ours, the protocol is
// checked by the reference implementation.
func TestGRPC(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("good", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("bad", healthpb.HealthCheckResponse_NOT_SERVING)
	port := serveGRPC(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })
	bare := serveGRPC(t, func(*grpc.Server) {})
	tests := []struct {
		name       string
		action     GRPCAction
		wantOK     bool
		wantReason string
	}{
		{name: "whole server serving", action: GRPCAction{Port: port}, wantOK: true},
		{name: "service serving", action: GRPCAction{Port: port, Service: "good"}, wantOK: true},
		{name: "service not serving", action: GRPCAction{Port: port, Service: "bad"}, wantReason: "grpc: status NOT_SERVING"},
		{name: "unknown service", action: GRPCAction{Port: port, Service: "nope"}, wantReason: `grpc: unknown service "nope"`},
		{name: "no health service", action: GRPCAction{Port: bare}, wantReason: "grpc: server has no grpc.health.v1 service"},
		{name: "closed port", action: GRPCAction{Port: closedPort(t)}, wantReason: "grpc: connection refused"},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			action := tc.action
			got := runCheck(t, p, Check{Name: "grpc", GRPC: &action}, generousTimeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

// recordingHealth answers SERVING and keeps what the last call carried.
type recordingHealth struct {
	healthpb.UnimplementedHealthServer
	service, userAgent string
	deadline           time.Duration
}

func (h *recordingHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.service = req.GetService()
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("user-agent")) > 0 {
		h.userAgent = md.Get("user-agent")[0]
	}
	if d, ok := ctx.Deadline(); ok {
		h.deadline = time.Until(d)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// The request carries the service, the user agent and the run's deadline, and runs leave
// no goroutines behind that grow with their number.
func TestGRPC_request(t *testing.T) {
	h := &recordingHealth{}
	port := serveGRPC(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, h) })
	p := newProber(nil)
	action := GRPCAction{Port: port, Service: "svc.v1"}
	got := runCheck(t, p, Check{Name: "grpc", GRPC: &action}, generousTimeout)
	checkResult(t, got, true, "")
	if h.service != "svc.v1" {
		t.Errorf("server saw service %q, want %q", h.service, "svc.v1")
	}
	if !strings.HasPrefix(h.userAgent, userAgent) {
		t.Errorf("server saw user agent %q, want it to start with %q", h.userAgent, userAgent)
	}
	if h.deadline <= 0 || h.deadline > generousTimeout {
		t.Errorf("server saw a deadline %v away, want within (0, %v]", h.deadline, generousTimeout)
	}

	before := runtime.NumGoroutine()
	for range 50 {
		checkResult(t, runCheck(t, p, Check{Name: "grpc", GRPC: &action}, generousTimeout), true, "")
	}
	// Closed connections' goroutines end shortly after; the slack also admits one
	// connection kept for reuse, which is bounded. What must not happen is one per run.
	deadline := time.Now().Add(generousTimeout)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Errorf("%d goroutines after 50 checks, %d before: each run leaves some behind", n, before)
	}
}

// grpcFrame returns msg as a length-prefixed gRPC message.
func grpcFrame(flag byte, msg []byte) []byte {
	framed := make([]byte, grpcFrameHeaderBytes, grpcFrameHeaderBytes+len(msg))
	framed[0] = flag
	binary.BigEndian.PutUint32(framed[1:], uint32(len(msg)))
	return append(framed, msg...)
}

// serveH2C starts a plaintext HTTP/2 server on a loopback port, for the answers that a
// well-behaved gRPC server never gives, and returns the port.
func serveH2C(t *testing.T, handler http.HandlerFunc) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	s := &http.Server{Handler: handler, Protocols: &protocols, ReadHeaderTimeout: generousTimeout}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	_, port := hostPort(t, l.Addr().String())
	return port
}

// grpcReply answers with a gRPC content type, the body and then the trailers.
func grpcReply(body []byte, trailers map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		for k, v := range trailers {
			w.Header().Set(http.TrailerPrefix+k, v)
		}
	}
}

func TestGRPC_badAnswers(t *testing.T) {
	serving, err := proto.Marshal(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING})
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{"Grpc-Status": "0"}
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantOK     bool
		wantReason string
	}{
		{name: "serving", handler: grpcReply(grpcFrame(0, serving), ok), wantOK: true},
		{name: "trailers-only error with an encoded message", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "14")
			w.Header().Set("Grpc-Message", "backend%20down%25")
			w.WriteHeader(http.StatusOK)
		}, wantReason: "grpc: Unavailable: backend down%"},
		{name: "not gRPC", handler: func(w http.ResponseWriter, r *http.Request) {
			http.NotFound(w, r)
		}, wantReason: "grpc: HTTP status 404"},
		{name: "wrong content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
		}, wantReason: `grpc: response content-type "text/plain", not application/grpc`},
		{name: "no status", handler: grpcReply(grpcFrame(0, serving), nil), wantReason: "grpc: response without grpc-status"},
		{name: "status out of range", handler: grpcReply(nil, map[string]string{"Grpc-Status": "17"}), wantReason: `grpc: bad grpc-status "17", want 0..16`},
		{name: "status not a number", handler: grpcReply(nil, map[string]string{"Grpc-Status": "OK"}), wantReason: `grpc: bad grpc-status "OK"`},
		{name: "OK without a message", handler: grpcReply(nil, ok), wantReason: "grpc: status OK without a response message"},
		{name: "compressed", handler: grpcReply(grpcFrame(1, serving), ok), wantReason: "grpc: compressed response message"},
		{name: "oversized", handler: grpcReply(grpcFrame(0, make([]byte, grpcMaxMessageBytes+1)), ok),
			wantReason: "grpc: response message of 1025 bytes, over the bound of 1024"},
		{name: "truncated message", handler: grpcReply(grpcFrame(0, serving)[:6], ok), wantReason: "grpc: reading the response message"},
		{name: "bad protobuf", handler: grpcReply(grpcFrame(0, []byte{0x08}), ok), wantReason: "grpc: bad response message"},
		{name: "status out of the enum", handler: grpcReply(grpcFrame(0, []byte{0x08, 0x09}), ok), wantReason: "grpc: status 9"},
		{name: "unknown fields skipped", handler: grpcReply(grpcFrame(0, append([]byte{0x12, 0x01, 'x'}, serving...)), ok), wantOK: true},
	}
	p := newProber(nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			action := GRPCAction{Port: serveH2C(t, tc.handler)}
			got := runCheck(t, p, Check{Name: "grpc", GRPC: &action}, generousTimeout)
			checkResult(t, got, tc.wantOK, tc.wantReason)
		})
	}
}

func TestGRPC_timeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	port := serveH2C(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	action := GRPCAction{Port: port}
	start := time.Now()
	got := runCheck(t, newProber(nil), Check{Name: "grpc", GRPC: &action}, shortTimeout)
	checkResult(t, got, false, "timed out")
	if took := time.Since(start); took > generousTimeout {
		t.Errorf("the check took %v with a %v timeout", took, shortTimeout)
	}
}

func TestEncodeHealthRequest(t *testing.T) {
	for _, service := range []string{"", "a", strings.Repeat("s", 300)} {
		framed := encodeHealthRequest(service)
		want, err := proto.Marshal(&healthpb.HealthCheckRequest{Service: service})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(framed, grpcFrame(0, want)) {
			t.Errorf("encodeHealthRequest(%d bytes) = %x, want %x", len(service), framed, grpcFrame(0, want))
		}
	}
}

func TestGRPCTimeout(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{d: 0, want: "1m"},
		{d: -time.Second, want: "1m"},
		{d: 1500 * time.Microsecond, want: "1m"},
		{d: 2 * time.Second, want: "2000m"},
		{d: 1000 * time.Hour, want: "99999999m"},
	}
	for _, tc := range tests {
		if got := grpcTimeout(tc.d); got != tc.want {
			t.Errorf("grpcTimeout(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// serveGRPC starts a gRPC server on a loopback port and returns the port.
func serveGRPC(t *testing.T, register func(*grpc.Server)) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	register(s)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	_, port := hostPort(t, l.Addr().String())
	return port
}

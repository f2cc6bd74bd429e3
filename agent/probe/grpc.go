package probe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The grpc check is one unary call of grpc.health.v1.Health/Check over plaintext HTTP/2,
// as kubelet's grpc probe makes it. It is written on net/http's HTTP/2 client, following
// the gRPC over HTTP/2 protocol description, so that the agent does not link and start a
// whole gRPC stack (about 4.5 MiB of resident memory) for one call every few seconds.
// The tests check it against grpc-go's own health server.

const (
	// grpcHealthPath is the method's path: /<package>.<service>/<method>.
	grpcHealthPath = "/grpc.health.v1.Health/Check"
	// grpcMaxMessageBytes bounds the response message; a HealthCheckResponse has 2 bytes.
	grpcMaxMessageBytes = 1 << 10
	// grpcFrameHeaderBytes is a message's prefix: a compressed flag and a 4-byte length.
	grpcFrameHeaderBytes = 5
	// grpcMaxTimeoutMillis is the largest grpc-timeout value in milliseconds (8 digits).
	grpcMaxTimeoutMillis = 99_999_999
)

// gRPC status codes that the check tells apart; grpcCodeNames names all of them.
const (
	grpcCodeOK            = 0
	grpcCodeNotFound      = 5
	grpcCodeUnimplemented = 12
)

var grpcCodeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

// healthServing is HealthCheckResponse.ServingStatus SERVING; healthStatusNames names
// the values of that enum.
const healthServing = 1

var healthStatusNames = [...]string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"}

// newGRPCClient returns the client of grpc checks: plaintext HTTP/2 with prior knowledge
// (no HTTP/1 upgrade, as gRPC servers expect), no proxy, a fresh connection per check,
// and no redirects, which gRPC does not have.
func newGRPCClient() *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:              nil,
			DisableKeepAlives:  true,
			DisableCompression: true,
			Protocols:          &protocols,
			DialContext:        (&net.Dialer{}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (p *prober) grpcCheck(ctx context.Context, a *GRPCAction) Result {
	u := "http://" + net.JoinHostPort(defaultHost, strconv.Itoa(int(a.Port))) + grpcHealthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(encodeHealthRequest(a.Service)))
	if err != nil {
		return failure("grpc: bad request: %v", err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", userAgent)
	if deadline, ok := ctx.Deadline(); ok {
		req.Header.Set("Grpc-Timeout", grpcTimeout(time.Until(deadline)))
	}
	resp, err := p.grpc.Do(req)
	if err != nil {
		return grpcFailure(ctx, err)
	}
	defer resp.Body.Close()
	return grpcResult(ctx, resp, a.Service)
}

// grpcResult reads a health call's response: its message, then its status, which comes in
// the trailers, or in the headers of a response that has no message.
func grpcResult(ctx context.Context, resp *http.Response, service string) Result {
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		if resp.StatusCode != http.StatusOK {
			return failure("grpc: HTTP status %d", resp.StatusCode)
		}
		return failure("grpc: response content-type %q, not application/grpc", ct)
	}
	msg, err := readGRPCMessage(resp.Body)
	if err != nil {
		return grpcFailure(ctx, err)
	}
	fields := resp.Trailer
	if fields.Get("Grpc-Status") == "" { // a trailers-only response
		fields = resp.Header
	}
	status := fields.Get("Grpc-Status")
	code, err := strconv.Atoi(status)
	switch {
	case status == "":
		return failure("grpc: response without grpc-status")
	case err != nil || code < 0 || code >= len(grpcCodeNames):
		return failure("grpc: bad grpc-status %q, want 0..%d", status, len(grpcCodeNames)-1)
	case code == grpcCodeNotFound:
		return failure("grpc: unknown service %q", service)
	case code == grpcCodeUnimplemented:
		return failure("grpc: server has no grpc.health.v1 service")
	case code != grpcCodeOK:
		message := fields.Get("Grpc-Message")
		if decoded, err := url.PathUnescape(message); err == nil {
			message = decoded
		}
		return failure("grpc: %s: %s", grpcCodeNames[code], message)
	case msg == nil:
		return failure("grpc: status OK without a response message")
	}
	serving, err := decodeHealthResponse(msg)
	if err != nil {
		return failure("grpc: bad response message: %v", err)
	}
	if serving != healthServing {
		return failure("grpc: status %s", healthStatusName(serving))
	}
	return success()
}

func grpcFailure(ctx context.Context, err error) Result {
	if ctx.Err() != nil {
		return failure("%s", describeErr(ctx, ctx.Err()))
	}
	return failure("grpc: %s", describeErr(ctx, err))
}

// readGRPCMessage reads the one length-prefixed message of a unary response, nil when
// there is none, and reads on to the end of the body, which makes the trailers available.
func readGRPCMessage(body io.Reader) ([]byte, error) {
	var header [grpcFrameHeaderBytes]byte
	n, err := io.ReadFull(body, header[:])
	if n == 0 && errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the response message: %w", err)
	}
	if header[0] != 0 {
		return nil, errors.New("compressed response message, though none was asked for")
	}
	size := binary.BigEndian.Uint32(header[1:])
	if size > grpcMaxMessageBytes {
		return nil, fmt.Errorf("response message of %d bytes, over the bound of %d", size, grpcMaxMessageBytes)
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(body, msg); err != nil {
		return nil, fmt.Errorf("reading the response message: %w", err)
	}
	// A unary response has one message; anything after it is read and dropped, bounded.
	if _, err := io.Copy(io.Discard, io.LimitReader(body, maxBodyBytes)); err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	return msg, nil
}

// encodeHealthRequest returns a HealthCheckRequest{service} as a length-prefixed,
// uncompressed gRPC message.
func encodeHealthRequest(service string) []byte {
	var msg []byte
	if service != "" { // proto3: the default value is not sent
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, service)
	}
	framed := make([]byte, grpcFrameHeaderBytes, grpcFrameHeaderBytes+len(msg))
	binary.BigEndian.PutUint32(framed[1:], uint32(len(msg)))
	return append(framed, msg...)
}

// decodeHealthResponse returns the status field (1) of a HealthCheckResponse; an absent
// field is UNKNOWN (0), and unknown fields are skipped, as proto3 decoders do.
func decodeHealthResponse(msg []byte) (uint64, error) {
	var status uint64
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		msg = msg[n:]
		if num == 1 && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return 0, protowire.ParseError(n)
			}
			status, msg = v, msg[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return status, nil
}

func healthStatusName(status uint64) string {
	if status < uint64(len(healthStatusNames)) {
		return healthStatusNames[status]
	}
	return strconv.FormatUint(status, 10)
}

// grpcTimeout formats d as a grpc-timeout header value: at most 8 digits of milliseconds,
// at least 1.
func grpcTimeout(d time.Duration) string {
	ms := min(max(d.Milliseconds(), 1), grpcMaxTimeoutMillis)
	return strconv.FormatInt(ms, 10) + "m"
}

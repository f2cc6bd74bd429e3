// Package apiusage counts what this agent asks of the Kubernetes API
// server: requests by verb and resource, the watches it holds open, and
// the bytes it receives. An agent runs on every node, so whatever one asks
// is multiplied by the cluster's size; these series let an SRE see that
// cost per node instead of guessing it from the API server's totals.
//
// It wraps the HTTP transport of the agent's REST config (rest.Config.Wrap),
// so every client built from that config is counted, the API server check
// included. It has no lifecycle.
package apiusage

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Meter counts the requests of the transports it wraps.
type Meter struct {
	requests *prometheus.CounterVec
	watches  *prometheus.GaugeVec
	bytes    prometheus.Counter
}

// New builds a meter and registers its series on reg (nil: unregistered).
func New(reg prometheus.Registerer) *Meter {
	m := &Meter{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haagent_api_requests_total",
			Help: "Requests this agent sent to the Kubernetes API server, by verb (get, list, watch, create, update, patch, delete) and resource (\"pods/eviction\" for a subresource, the path for a non-resource URL such as /readyz).",
		}, []string{"verb", "resource"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "haagent_api_watches",
			Help: "Watches this agent holds open on the Kubernetes API server, by resource.",
		}, []string{"resource"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haagent_api_received_bytes_total",
			Help: "Bytes of response bodies this agent received from the Kubernetes API server, watch streams included.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.watches, m.bytes)
	}
	return m
}

// Wrap returns rt counted by m; it has the signature of
// k8s.io/client-go/transport.WrapperFunc, for rest.Config.Wrap.
func (m *Meter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return &roundTripper{next: rt, m: m}
}

type roundTripper struct {
	next http.RoundTripper
	m    *Meter
}

func (t *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	verb, resource := Classify(req)
	t.m.requests.WithLabelValues(verb, resource).Inc()
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	body := &countingBody{ReadCloser: resp.Body, bytes: t.m.bytes}
	if verb == "watch" && resp.StatusCode/100 == 2 {
		g := t.m.watches.WithLabelValues(resource)
		g.Inc()
		body.onClose = g.Dec
	}
	resp.Body = body
	return resp, nil
}

// countingBody counts the bytes read through it, and runs onClose once
// when closed.
type countingBody struct {
	io.ReadCloser
	bytes   prometheus.Counter
	once    sync.Once
	onClose func()
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.bytes.Add(float64(n))
	}
	return n, err
}

func (b *countingBody) Close() error {
	if b.onClose != nil {
		b.once.Do(b.onClose)
	}
	return b.ReadCloser.Close()
}

// Classify names a request's verb and resource the way the API server's
// audit log does: a GET of a collection is a list, of one object a get,
// and either with watch=true a watch. Non-resource URLs (/readyz,
// /version) are named by their path.
func Classify(req *http.Request) (verb, resource string) {
	segs := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var rest []string
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		rest = segs[2:] // api/v1/...
	case len(segs) >= 3 && segs[0] == "apis":
		rest = segs[3:] // apis/group/version/...
	default:
		return strings.ToLower(req.Method), req.URL.Path
	}
	watch := req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1"
	if len(rest) > 0 && rest[0] == "watch" { // the deprecated /watch/ paths
		watch, rest = true, rest[1:]
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:] // namespaces/NS/resource/...
	}
	if len(rest) == 0 {
		return strings.ToLower(req.Method), req.URL.Path
	}
	resource = rest[0]
	named := len(rest) >= 2
	if len(rest) >= 3 {
		resource += "/" + rest[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case watch:
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		if named {
			verb = "delete"
		} else {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(req.Method)
	}
	return verb, resource
}

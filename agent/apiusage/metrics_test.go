package apiusage

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the API usage metrics as promtool check
// metrics does. The resource label takes the API's resource names.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	rt := m.Wrap(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	}))
	req, err := http.NewRequest(http.MethodGet, "https://api.example/api/v1/nodes?watch=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	metricstest.Check(t, reg, "resource")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

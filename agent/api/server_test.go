package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/gossip"
)

type fakeMembership struct{}

func (fakeMembership) LocalName() string         { return "n1" }
func (fakeMembership) Members() []gossip.Member  { return nil }
func (fakeMembership) Running() bool             { return true }
func (fakeMembership) Ready() bool               { return true }
func (fakeMembership) Quorum() gossip.QuorumView { return gossip.QuorumView{} }

// TestServer_guard: the guard stands in front of /metrics and /members
// only; the kubelet's probes reach /healthz and /readyz without
// credentials.
func TestServer_guard(t *testing.T) {
	refuse := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	}
	for _, tc := range []struct {
		name  string
		guard Guard
		want  map[string]int
	}{
		{"guarded", refuse, map[string]int{"/metrics": 401, "/members": 401, "/healthz": 200, "/readyz": 200}},
		{"open", nil, map[string]int{"/metrics": 200, "/members": 200, "/healthz": 200, "/readyz": 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(DefaultConfig(), Deps{Logger: zap.NewNop(), Gatherer: prometheus.NewRegistry(), Members: fakeMembership{}, Guard: tc.guard})
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				rec := httptest.NewRecorder()
				s.srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != want {
					t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
				}
			}
		})
	}
}

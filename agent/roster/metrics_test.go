package roster

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/haagent/haagent/internal/metricstest"
)

// TestMetrics_conventions lints the roster metrics as promtool check
// metrics does.
func TestMetrics_conventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	client := fake.NewClientset()
	newCache(t, client, reg)
	if _, err := NewPublisher(PublisherConfig{Namespace: "haagent", Name: DefaultName, AgentCondition: "HAAgentReady", Check: time.Second},
		PublisherDeps{Client: client, Logger: zap.NewNop(), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	metricstest.Check(t, reg)
}

package roster

import (
	"testing"

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
	NewCache(client, "haagent", DefaultName, zap.NewNop(), reg)
	NewPublisher(PublisherConfig{Namespace: "haagent", Name: DefaultName, AgentCondition: "HAAgentReady"}, client, nil, zap.NewNop(), reg)
	metricstest.Check(t, reg)
}

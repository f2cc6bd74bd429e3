// Package nodestatus reports the agent's verdict about its own node as a
// Node condition, HAAgentReady, the way node-problem-detector reports its
// conditions: kubectl describe node shows it, with the failing check named
// in the reason and message.
//
// Lifecycle: New starts nothing; Run patches the condition on every new
// verdict and again every ResyncInterval (so the heartbeat shows the agent
// is alive), until its context ends. It writes only the status of its own
// Node, through the nodes/status subresource.
package nodestatus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"go.uber.org/zap"

	"github.com/haagent/haagent/agent/probe"
)

// ConditionType is the Node condition haagent owns.
const ConditionType corev1.NodeConditionType = "HAAgentReady"

// ResyncInterval is how often the condition is written even when nothing
// changed: the kubelet's own nodeStatusReportFrequency. Every node writes
// it, so it is the API server's cost per node; a verdict that changes is
// written at once all the same.
const ResyncInterval = 5 * time.Minute

// Verdicts is where verdicts come from (probe.Runner).
type Verdicts interface {
	Subscribe() (<-chan probe.Verdict, func())
}

// Reporter writes the HAAgentReady condition of one Node.
type Reporter struct {
	client kubernetes.Interface
	node   string
	src    Verdicts
	clock  clock.WithTicker
	log    *zap.Logger
}

// Config names the Node a Reporter writes.
type Config struct {
	// Node is the name of this agent's own Node (--node-name).
	Node string
}

// Deps are what a Reporter needs.
type Deps struct {
	Client kubernetes.Interface
	// Verdicts are this node's verdicts (probe.Runner).
	Verdicts Verdicts
	// Clock nil is the real clock.
	Clock  clock.WithTicker
	Logger *zap.Logger
}

// New returns a reporter for cfg.Node; it starts nothing.
func New(cfg Config, deps Deps) (*Reporter, error) {
	if deps.Client == nil || cfg.Node == "" || deps.Verdicts == nil || deps.Logger == nil {
		return nil, errors.New("nodestatus: New needs a client, a node name, a verdict source and a logger")
	}
	clk := deps.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Reporter{client: deps.Client, node: cfg.Node, src: deps.Verdicts, clock: clk, log: deps.Logger.Named("nodestatus")}, nil
}

// Run reports until ctx ends. Write errors are logged and retried at the
// next verdict or resync; they never stop the agent.
func (r *Reporter) Run(ctx context.Context) error {
	verdicts, cancel := r.src.Subscribe()
	defer cancel()
	t := r.clock.NewTicker(ResyncInterval)
	defer t.Stop()
	var last *probe.Verdict
	retry := r.clock.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case v, ok := <-verdicts:
			if !ok {
				return nil
			}
			last = &v
		case <-t.C():
		case <-retry.C():
		}
		if last == nil {
			continue
		}
		if err := r.patch(ctx, *last); err != nil {
			r.log.Warn("report node condition", zap.String("node", r.node), zap.Error(err))
			retry.Reset(5 * time.Second)
		}
	}
}

var reasonUnsafe = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Condition builds the condition for a verdict. Reasons are CamelCase as
// Kubernetes expects: AllChecksPassing, or CheckFailed_<check> with the
// check name folded into CamelCase.
func Condition(v probe.Verdict, now time.Time) corev1.NodeCondition {
	c := corev1.NodeCondition{
		Type:              ConditionType,
		Status:            corev1.ConditionTrue,
		Reason:            "AllChecksPassing",
		Message:           "every haagent node check passes",
		LastHeartbeatTime: metav1.NewTime(now),
	}
	if !v.Ready {
		c.Status = corev1.ConditionFalse
		c.Reason = "CheckFailed" + camel(v.FailingCheck)
		c.Message = fmt.Sprintf("check %q fails: %s", v.FailingCheck, v.Reason)
	}
	if !v.Since.IsZero() {
		c.LastTransitionTime = metav1.NewTime(v.Since)
	} else {
		c.LastTransitionTime = metav1.NewTime(now)
	}
	return c
}

func camel(s string) string {
	var b strings.Builder
	for _, part := range reasonUnsafe.Split(s, -1) {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// patch writes the condition with a strategic merge patch on the status:
// conditions merge by type, so the kubelet's own conditions are untouched.
func (r *Reporter) patch(ctx context.Context, v probe.Verdict) error {
	body, err := json.Marshal(map[string]any{
		"status": map[string]any{"conditions": []corev1.NodeCondition{Condition(v, r.clock.Now())}},
	})
	if err != nil {
		return err
	}
	_, err = r.client.CoreV1().Nodes().Patch(ctx, r.node, types.StrategicMergePatchType, body,
		metav1.PatchOptions{FieldManager: "haagent"}, "status")
	return err
}

package roster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/internal/periodic"
)

// ZoneLabel is the Node label the roster takes the zone from.
const ZoneLabel = "topology.kubernetes.io/zone"

// Nodes is the coordinator's watched copy of the Nodes.
type Nodes interface {
	// Synced reports whether the first Node list has arrived.
	Synced() bool
	// List returns every Node. Callers must not modify them.
	List() []*corev1.Node
}

// PublisherConfig tunes the publisher.
type PublisherConfig struct {
	Namespace, Name string
	// AgentCondition is the Node condition that marks a Node an agent has
	// run on.
	AgentCondition corev1.NodeConditionType
	// MinInterval is the least time between two writes: every agent
	// receives each write, so a cluster that gains Nodes one by one is
	// published in batches.
	MinInterval time.Duration
	// Check is how often the Nodes are compared with what was published.
	Check time.Duration
}

// Publisher writes the roster from the coordinator's Node cache. It runs
// only while its agent holds the coordinator Lease.
type Publisher struct {
	cfg    PublisherConfig
	client kubernetes.Interface
	clock  clock.WithTicker
	log    *zap.Logger
	writes *prometheus.CounterVec
}

// PublisherDeps are what a Publisher needs.
type PublisherDeps struct {
	Client kubernetes.Interface
	Logger *zap.Logger
	// Registerer takes the publisher's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock nil is the real clock.
	Clock clock.WithTicker
}

// NewPublisher builds a publisher; it starts nothing.
func NewPublisher(cfg PublisherConfig, deps PublisherDeps) (*Publisher, error) {
	switch {
	case cfg.Namespace == "" || cfg.Name == "":
		return nil, errors.New("roster: NewPublisher needs the Namespace and Name of the roster ConfigMap")
	case cfg.Check <= 0:
		return nil, fmt.Errorf("roster: Check (%s) must be positive", cfg.Check)
	case cfg.MinInterval < 0:
		return nil, fmt.Errorf("roster: MinInterval (%s) must not be negative", cfg.MinInterval)
	case deps.Client == nil || deps.Logger == nil:
		return nil, errors.New("roster: NewPublisher needs a Client and a Logger")
	}
	clk := deps.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	p := &Publisher{cfg: cfg, client: deps.Client, clock: clk, log: deps.Logger,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "haagent_roster_writes_total",
			Help: "Writes of the roster ConfigMap by this agent while it coordinated, by result (success, failure).",
		}, []string{"result"})}
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(p.writes)
	}
	return p, nil
}

// Entries builds the roster of nodes.
func Entries(nodes []*corev1.Node, agentCondition corev1.NodeConditionType) []Entry {
	out := make([]Entry, 0, len(nodes))
	for _, n := range nodes {
		e := Entry{Name: n.Name, Zone: n.Labels[ZoneLabel]}
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, a := range n.Status.Addresses {
				if a.Type == t && a.Address != "" {
					e.Addresses = append(e.Addresses, a.Address)
				}
			}
		}
		for _, c := range n.Status.Conditions {
			if c.Type == agentCondition {
				e.Agent = true
				break
			}
		}
		out = append(out, e)
	}
	return out
}

// Run publishes from nodes until ctx ends: at once, then every Check. It
// never publishes before the Node cache has synced: a roster written from
// part of the Nodes would shrink every agent's expected group.
func (p *Publisher) Run(ctx context.Context, nodes Nodes) error {
	var published map[string]string // nil: unknown, read it first
	var last time.Time
	publish := func(ctx context.Context) {
		if !nodes.Synced() || (!last.IsZero() && p.clock.Since(last) < p.cfg.MinInterval) {
			return
		}
		want := Encode(Entries(nodes.List(), p.cfg.AgentCondition))
		if published != nil && maps.Equal(published, want) {
			return
		}
		if err := p.write(ctx, want); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.writes.WithLabelValues("failure").Inc()
			p.log.Warn("roster: write failed, will retry", zap.Error(err))
			published = nil
		} else {
			p.writes.WithLabelValues("success").Inc()
			published = want
		}
		last = p.clock.Now()
	}
	publish(ctx)
	// No jitter: only the coordinator publishes, so there is no one to
	// spread it from.
	return periodic.Every(ctx, p.clock, p.cfg.Check, 0, publish)
}

// write creates or updates the ConfigMap to data, unless it holds it
// already.
func (p *Publisher) write(ctx context.Context, data map[string]string) error {
	cms := p.client.CoreV1().ConfigMaps(p.cfg.Namespace)
	cur, err := cms.Get(ctx, p.cfg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: p.cfg.Name, Namespace: p.cfg.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "haagent", "app.kubernetes.io/component": "roster"}},
			Data: data,
		}, metav1.CreateOptions{})
		return err
	case err != nil:
		return err
	case maps.Equal(cur.Data, data):
		return nil
	}
	cur = cur.DeepCopy()
	cur.Data = data
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

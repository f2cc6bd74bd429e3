package roster

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/internal/periodic"
)

// Cache is an agent's copy of the roster: one watch of one ConfigMap.
// What the roster last said stays true through an API outage, and through
// a roster that fails to parse (counted and logged, never half applied).
//
// Lifecycle: NewCache starts nothing; Run runs the watch until its context
// ends; WaitForSync waits for the first answer.
type Cache struct {
	informer cache.SharedIndexInformer
	log      *zap.Logger
	clock    clock.WithTicker
	invalid  prometheus.Counter
	entries  prometheus.Gauge
	// snap is the last roster read, nil before one was.
	snap atomic.Pointer[snapshot]
	// gone are Nodes of the roster that the API has said are deleted since
	// it was written (FollowDeletions); a new roster clears them.
	goneMu sync.Mutex
	gone   map[string]bool
	// version is the resourceVersion of the roster in snap: a relist of
	// the watch hands the same object again, which changes nothing.
	version string
}

type snapshot struct {
	byName map[string]Entry
	agents []string
}

// CacheConfig names the roster ConfigMap a Cache watches.
type CacheConfig struct {
	// Namespace and Name of the roster ConfigMap (DefaultName).
	Namespace, Name string
}

// CacheDeps are what a Cache needs.
type CacheDeps struct {
	// Client must have no overall request timeout (rest.Config.Timeout
	// 0), or the watch is cut and started anew at each timeout.
	Client kubernetes.Interface
	Logger *zap.Logger
	// Registerer takes the cache's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock paces FollowDeletions; nil is the real clock.
	Clock clock.WithTicker
}

// NewCache builds a cache of the roster ConfigMap; it starts nothing.
func NewCache(cfg CacheConfig, deps CacheDeps) (*Cache, error) {
	if cfg.Namespace == "" || cfg.Name == "" {
		return nil, errors.New("roster: NewCache needs the Namespace and Name of the roster ConfigMap")
	}
	if deps.Client == nil || deps.Logger == nil {
		return nil, errors.New("roster: NewCache needs a Client and a Logger")
	}
	one := func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.Name).String()
	}
	c := &Cache{
		informer: coreinformers.NewFilteredConfigMapInformer(deps.Client, cfg.Namespace, 0, cache.Indexers{}, one),
		log:      deps.Logger,
		clock:    deps.Clock,
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "haagent_roster_invalid_total",
			Help: "Roster ConfigMaps that failed to parse; the agent keeps the last good roster.",
		}),
		entries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "haagent_roster_nodes",
			Help: "Nodes in this agent's copy of the roster the coordinator publishes.",
		}),
	}
	if c.clock == nil {
		c.clock = clock.RealClock{}
	}
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(c.invalid, c.entries)
	}
	_, _ = c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.set,
		UpdateFunc: func(_, obj any) { c.set(obj) },
		// A deleted roster leaves the last one in place: deleting the
		// ConfigMap must not shrink every agent's expected group. The
		// coordinator writes it again.
	})
	return c, nil
}

func (c *Cache) set(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	c.goneMu.Lock()
	same := cm.ResourceVersion != "" && cm.ResourceVersion == c.version
	c.goneMu.Unlock()
	if same {
		return
	}
	entries, err := Decode(cm.Data)
	if err != nil {
		c.invalid.Inc()
		c.log.Error("roster: keeping the last good roster", zap.String("configmap", cm.Namespace+"/"+cm.Name), zap.Error(err))
		return
	}
	s := &snapshot{byName: make(map[string]Entry, len(entries))}
	for _, e := range entries {
		s.byName[e.Name] = e
		if e.Agent {
			s.agents = append(s.agents, e.Name)
		}
	}
	c.snap.Store(s)
	c.entries.Set(float64(len(entries)))
	c.goneMu.Lock()
	c.gone = nil // the coordinator's word is newer
	c.version = cm.ResourceVersion
	c.goneMu.Unlock()
}

func (c *Cache) isGone(name string) bool {
	c.goneMu.Lock()
	defer c.goneMu.Unlock()
	return c.gone[name]
}

// FollowDeletions keeps the roster true to Node deletions while no
// coordinator can write it. Only a coordinator writes the roster, and
// only an agent that sees a majority of the expected group becomes one:
// when most of a cluster's nodes die and are deleted, the survivors
// would count them for ever, and never see a majority again. So, while
// active() (no majority in sight, and the API server reachable), it reads
// the Node of one name of suspects() (members of the expected group not
// alive in gossip) every interval, in turn, and counts a Node the API no
// longer has as gone until the next roster. It asks nothing while a
// majority is in sight, and one GET an interval (±10 %) otherwise. It
// returns when ctx ends.
func (c *Cache) FollowDeletions(ctx context.Context, get func(ctx context.Context, name string) error,
	active func() bool, suspects func() []string, interval time.Duration) error {
	next := 0
	// Jittered: every agent without a majority in sight runs this, and
	// their reads of the API server need not come in step.
	return periodic.Every(ctx, c.clock, interval, followJitter, func(ctx context.Context) {
		if !c.Synced() || !active() {
			return
		}
		names := suspects()
		if len(names) == 0 {
			return
		}
		name := names[next%len(names)]
		next++
		rctx, cancel := context.WithTimeout(ctx, interval)
		err := get(rctx, name)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			c.goneMu.Lock()
			if c.gone == nil {
				c.gone = map[string]bool{}
			}
			added := !c.gone[name]
			c.gone[name] = true
			c.goneMu.Unlock()
			if added {
				c.log.Info("roster: Node deleted; no longer counted in the expected group", zap.String("node", name))
			}
		case err == nil:
			c.goneMu.Lock()
			delete(c.gone, name)
			c.goneMu.Unlock()
		}
	})
}

// followJitter spreads the reads of FollowDeletions by ±10 %.
const followJitter = 0.1

// Run runs the watch until ctx ends.
func (c *Cache) Run(ctx context.Context) error {
	c.informer.RunWithContext(ctx)
	return nil
}

// WaitForSync waits up to timeout for a roster and reports whether one
// came.
func (c *Cache) WaitForSync(ctx context.Context, timeout time.Duration) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !c.Synced() {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-t.C:
		}
	}
	return true
}

// Synced reports whether a roster has been read. Until then the agent
// has no word from the API on which Nodes exist.
func (c *Cache) Synced() bool { return c.snap.Load() != nil }

// Lookup returns the named Node's entry.
func (c *Cache) Lookup(name string) (Entry, bool) {
	s := c.snap.Load()
	if s == nil || c.isGone(name) {
		return Entry{}, false
	}
	e, ok := s.byName[name]
	return e, ok
}

// Exists reports whether the named Node is in the roster.
func (c *Cache) Exists(name string) bool {
	_, ok := c.Lookup(name)
	return ok
}

// AgentNodes lists the Nodes on which an agent has run.
func (c *Cache) AgentNodes() []string {
	s := c.snap.Load()
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.agents))
	for _, name := range s.agents {
		if !c.isGone(name) {
			out = append(out, name)
		}
	}
	return out
}

// Addresses returns the named Node's addresses.
func (c *Cache) Addresses(name string) ([]string, bool) {
	e, ok := c.Lookup(name)
	return e.Addresses, ok
}

// NodeAddress returns the named Node's InternalIP, for the kubelet checks
// of suspect peers.
func (c *Cache) NodeAddress(name string) (string, bool) {
	e, ok := c.Lookup(name)
	if !ok || e.InternalIP() == "" {
		return "", false
	}
	return e.InternalIP(), true
}

// Peers returns the gossip addresses (InternalIP:port) of the Nodes an
// agent has run on: with hostNetwork, where their agents listen. It
// returns none before a roster was read, so that discovery falls back to
// listing the agent pods.
func (c *Cache) Peers(port int) []string {
	s := c.snap.Load()
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.agents))
	for _, name := range s.agents {
		if ip := s.byName[name].InternalIP(); ip != "" {
			out = append(out, net.JoinHostPort(ip, strconv.Itoa(port)))
		}
	}
	return out
}

package main

import (
	"context"
	"fmt"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gometricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	kuberecord "k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/haagent/haagent/agent/admission"
	"github.com/haagent/haagent/agent/agreement"
	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/apiusage"
	"github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/discovery"
	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/fence"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/nodestatus"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/agent/record"
	"github.com/haagent/haagent/agent/roster"
	"github.com/haagent/haagent/internal/logging"
	"github.com/haagent/haagent/internal/version"
)

const runLong = `Run the agent: one per node, as a DaemonSet.

Settings come, in order of precedence, from:
  1. flags;
  2. the environment a DaemonSet passes through the downward API:
     NODE_NAME (--node-name), HOST_IP then POD_IP (--advertise-addr),
     POD_NAMESPACE (--namespace);
  3. the YAML file of --config, whose keys are the flag names below (plus
     a checks: list of node checks);
  4. the defaults.

Invalid settings stop the agent at start, with exit code 2 and a message
that names the flag and the bound.`

func newRunCommand(getenv func(string) string) *cobra.Command {
	o := defaultRunOptions()
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Run the agent (one per node, as a DaemonSet)",
		Long:  runLong,
		Example: `  haagent run --config=/etc/haagent/config.yaml --keyring-file=/etc/haagent/keyring/keys
  haagent run --node-name=n1 --join=10.0.0.2,10.0.0.3 --gossip-profile=fast --log-format=console`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd.Flags(), args, getenv); err != nil {
				return configError(err)
			}
			return runMain(o, getenv)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// runMain runs the agent until SIGINT or SIGTERM.
func runMain(o runOptions, getenv func(string) string) error {
	log, err := logging.New(o.logging)
	if err != nil {
		return configError(err)
	}
	defer func() { _ = log.Sync() }()
	logging.RouteKlog(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := runAgent(ctx, o, log, getenv); err != nil {
		log.Error("agent failed", zap.Error(err))
		return &exitError{code: exitFailure} // logged
	}
	return nil
}

// runAgent wires the components and runs them until ctx ends.
func runAgent(ctx context.Context, o runOptions, log *zap.Logger, getenv func(string) string) error {
	if o.coordinator.FenceBound > 0 {
		log.Info("fence bound", zap.Duration("fence_bound", o.coordinator.FenceBound),
			zap.Duration("min_fence_bound", o.fenceTerms().MinBound()), zap.String("formula", o.fenceTerms().String()))
	}
	if o.coordinator.FenceBound > 0 && o.fence.Action == "none" {
		log.Warn("--fence-bound is set but this agent's --fence-action is none: stateful pods of a dead node will be force-removed after the bound even though no agent fences it; set it only if nodes are known to be powered off within the bound",
			zap.Duration("fence_bound", o.coordinator.FenceBound))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector())
	if err := exportMemberlistMetrics(reg, o.rawMemberlistMetrics); err != nil {
		return err
	}

	restCfg, err := kubeConfig(o.kubeconfig, getenv)
	if err != nil {
		return err
	}
	if restCfg != nil {
		restCfg.QPS, restCfg.Burst = float32(o.apiQPS), o.apiBurst
		// The node in the user agent lets the API server's audit log and
		// an SRE tell one agent's requests from another's.
		restCfg.UserAgent = "haagent/" + version.Version + " node=" + o.gossip.NodeName
		restCfg.Wrap(apiusage.New(reg).Wrap)
	}
	seeds := discovery.Union{}
	if len(o.join) > 0 {
		static, err := discovery.ParseSeeds(o.join, o.gossip.BindPort)
		if err != nil {
			return err
		}
		seeds = append(seeds, static)
	}
	var apiServer *probe.APIServer
	var client, watchClient kubernetes.Interface
	var rosterPeers atomic.Pointer[roster.Cache]
	if restCfg != nil {
		client, err = kubernetes.NewForConfig(restCfg)
		if err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		// A watch must not be cut at the request timeout.
		watchCfg := rest.CopyConfig(restCfg)
		watchCfg.Timeout = 0
		if watchClient, err = kubernetes.NewForConfig(watchCfg); err != nil {
			return fmt.Errorf("kubernetes client: %w", err)
		}
		kd, err := discovery.NewKubernetes(client, o.namespace, o.discoverySelector, o.gossip.BindPort)
		if err != nil {
			return err
		}
		// The roster names where agents run; the agent pods are listed
		// only while there is none, as in a new cluster.
		seeds = append(seeds, discovery.Fallback{
			Primary: func() []string {
				if r := rosterPeers.Load(); r != nil {
					return r.Peers(o.gossip.BindPort)
				}
				return nil
			},
			Secondary: kd,
		})
		httpClient, err := rest.HTTPClientFor(restCfg)
		if err != nil {
			return fmt.Errorf("kubernetes HTTP client: %w", err)
		}
		apiServer = &probe.APIServer{URL: restCfg.Host, Client: httpClient}
	} else {
		log.Info("no Kubernetes API configured: discovery from --join only, no API server check")
		o.probe.Checks = withoutAPIServerChecks(o.probe.Checks)
	}

	// The node checks and the fencer start before anything waits for the
	// API server: an agent that restarts on a cut-off node must count
	// itself isolated from its first second, not after its start-up waits
	// (a zone lookup and the Node list took 40 s there, and the coordinator
	// force-removed the node's stateful pods meanwhile). Until gossip runs,
	// this agent is in touch with nobody.
	runner, err := probe.NewRunner(o.probe, probe.Deps{APIServer: apiServer, Logger: log, Registerer: reg})
	if err != nil {
		return err
	}
	var gossipRef atomic.Pointer[gossip.Membership]
	inTouch := func() bool {
		m := gossipRef.Load()
		return m != nil && m.InTouch()
	}
	apiOK := apiReachable(runner, apiCheckTime(o.probe.Checks))
	fencer, err := fence.New(o.fence, fence.Signals{Majority: inTouch, APIReachable: apiOK}, nil, log, reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	start := func(cs ...component) {
		for _, c := range cs {
			g.Go(func() error { return c.runLogged(ctx, log) })
		}
	}
	start(component{"probe", runner.Run}, component{"fence", fencer.Run})
	// abort stops what started and returns err.
	abort := func(err error) error {
		cancel()
		_ = g.Wait()
		return err
	}

	var peerSource gossip.PeerSource
	if len(seeds) > 0 {
		peerSource = seeds
	}
	gossipDeps := gossip.Deps{Logger: log, Registerer: reg, Seeds: peerSource}
	var nodes *roster.Cache
	// The auto profile's timings follow the group size, counted now:
	// memberlist's cannot change once it is created.
	autoSize := o.gossip.ProfileName == gossip.ProfileAuto && o.gossip.ExpectedMembers == 0
	var nodeCounted <-chan nodeCount
	if client != nil {
		// One watch of one ConfigMap, the roster the coordinator
		// publishes, serves admission, the expected group that majorities
		// are counted against, the kubelet checks of suspect peers and
		// discovery: no agent but the coordinator watches every Node. The
		// wait is short: gossip must start well within --fence-after even
		// when the API server is away, or this agent would fence a node
		// whose peers it could reach.
		if nodes, err = roster.NewCache(roster.CacheConfig{Namespace: o.namespace, Name: roster.DefaultName},
			roster.CacheDeps{Client: watchClient, Logger: log, Registerer: reg}); err != nil {
			return abort(err)
		}
		start(component{"roster", nodes.Run})
		if autoSize {
			nodeCounted = startNodeCount(ctx, client, nodeListWait)
		}
		if !nodes.WaitForSync(ctx, nodeListWait) {
			log.Warn("no roster yet (the coordinator publishes it): admitting gossip peers unchecked and counting majorities against the members seen, until one arrives",
				zap.Duration("waited", nodeListWait), zap.String("configmap", o.namespace+"/"+roster.DefaultName))
		}
		if o.gossip.Zone == "" {
			o.gossip.Zone = zoneFromNode(ownNode{client: client, timeout: nodeListWait}, o.gossip.NodeName, log)
		}
		gossipDeps.Nodes = nodes
		if o.admission {
			gossipDeps.Admit = admission.New(nodes).Admit
		}
		rosterPeers.Store(nodes)
	}
	if o.gossip.ProfileName == gossip.ProfileAuto {
		var rosterAgents []string
		if nodes != nil {
			rosterAgents = nodes.AgentNodes()
		}
		n, source, why := groupSize(o.gossip.ExpectedMembers, rosterAgents, nodeCounted)
		o.gossip.ExpectedMembers = n
		logTimings(log, o.gossip, source, why)
	}
	members, err := gossip.New(o.gossip, gossipDeps)
	if err != nil {
		return abort(err)
	}
	// The components that run from here on, in the order they start.
	var components []component
	if nodes != nil {
		// Without a majority no coordinator writes the roster, so this
		// agent follows Node deletions itself (see FollowDeletions).
		components = append(components, component{"roster-deletions", func(ctx context.Context) error {
			return nodes.FollowDeletions(ctx, func(ctx context.Context, name string) error {
				_, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{ResourceVersion: "0"})
				return err
			}, func() bool { return !members.SeesMajority() && apiOK() }, func() []string { return notAlive(members) }, deletionCheck)
		}})
	}
	peer, err := probe.NewPeerChecker(o.peer, probe.PeerDeps{Registerer: reg})
	if err != nil {
		return abort(err)
	}
	agreeDeps := agreement.Deps{Gossip: members, Peer: peer, Logger: log, Registerer: reg}
	var reporter *nodestatus.Reporter
	if client != nil {
		agreeDeps.NodeAddress = nodes.NodeAddress
		if reporter, err = nodestatus.New(nodestatus.Config{Node: o.gossip.NodeName}, nodestatus.Deps{Client: client, Verdicts: runner, Logger: log}); err != nil {
			return abort(err)
		}
	}
	// Votes go to the Lease holder the coordinator observes; coord is set
	// below, before anything runs.
	var coord *coordinator.Coordinator
	agreeDeps.Coordinator = func() string {
		if coord == nil {
			return ""
		}
		return coord.Holder()
	}
	agree, err := agreement.New(o.agreement, agreeDeps)
	if err != nil {
		return abort(err)
	}
	if client != nil {
		clk, err := coordinatorClock(getenv)
		if err != nil {
			return abort(err)
		}
		if coord, err = newCoordinator(ctx, o, restCfg, client, watchClient, apiOK, members, agree, clk, log, reg); err != nil {
			return abort(err)
		}
	} else {
		log.Info("no Kubernetes API configured: this agent votes but never coordinates a failover")
	}
	guard, err := httpGuard(o.httpAuth, restCfg, log, reg)
	if err != nil {
		return abort(err)
	}
	server, err := api.New(o.api, api.Deps{Logger: log, Gatherer: reg, Members: members, Guard: guard})
	if err != nil {
		return abort(err)
	}
	if _, err := server.Listen(); err != nil {
		return abort(err)
	}
	log.Info("haagent starting", zap.String("version", version.Version), zap.String("node", o.gossip.NodeName))

	gossipRef.Store(members)
	components = append(components,
		component{"gossip", members.Run},
		component{"api", server.Run},
		component{"readiness", func(ctx context.Context) error { publishReadiness(ctx, runner, members, log); return nil }},
		component{"agreement", agree.Run},
	)
	if coord != nil {
		components = append(components, component{"coordinator", coord.Run})
	}
	if reporter != nil {
		components = append(components, component{"nodestatus", reporter.Run})
	}
	start(components...)
	return g.Wait()
}

// component is a part of the agent that runs until its context ends and
// returns only after its goroutines have. The agent runs its components
// in one errgroup: the first that fails ends them all, and the agent
// exits once every one has returned.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// runLogged runs c and logs its failure with its name.
func (c component) runLogged(ctx context.Context, log *zap.Logger) error {
	err := c.run(ctx)
	if err != nil {
		log.Error("component failed", zap.String("component", c.name), zap.Error(err))
	}
	return err
}

// deletionCheck is how often an agent without a majority in sight reads
// the Node of one member it expects but does not see alive.
const deletionCheck = 2 * time.Second

// notAlive lists the members of the expected group that gossip does not
// hold alive.
func notAlive(m *gossip.Membership) []string {
	alive := map[string]bool{}
	for _, mem := range m.Members() {
		if mem.State == gossip.StateAlive {
			alive[mem.Name] = true
		}
	}
	var out []string
	for _, name := range m.ExpectedNames() {
		if !alive[name] {
			out = append(out, name)
		}
	}
	return out
}

// nodeListWait bounds the start-up wait for the first Node list.
const nodeListWait = 2 * time.Second

// newCoordinator builds the failover actor and what it writes with.
func newCoordinator(ctx context.Context, o runOptions, restCfg *rest.Config, client, watchClient kubernetes.Interface, apiOK func() bool,
	members *gossip.Membership, agree *agreement.Agreement, clk clock.WithTicker, log *zap.Logger, reg prometheus.Registerer) (*coordinator.Coordinator, error) {
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes dynamic client: %w", err)
	}
	store, err := record.NewStore(record.DefaultConfig(), record.Deps{Client: dyn, Registerer: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	// Events go through a client of their own with a lower rate limit: a
	// failover of a full node records an Event on each pod it moves, and
	// those writes must never wait in front of its evictions. The
	// recorder queues them (and drops them past 1000 queued) while this
	// client sends them at eventQPS.
	eventsCfg := rest.CopyConfig(restCfg)
	eventsCfg.QPS, eventsCfg.Burst = eventQPS, eventBurst
	eventsClient, err := kubernetes.NewForConfig(eventsCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes events client: %w", err)
	}
	broadcaster := kuberecord.NewBroadcaster(kuberecord.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventsClient.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "haagent", Host: o.gossip.NodeName})
	evictor, err := evict.New(o.evict, evict.Deps{Client: client, Recorder: recorder, Logger: log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	return coordinator.New(o.coordinator, coordinator.Deps{
		Client: client, Namespace: o.namespace, Gossip: members, Ballots: agree, Notices: agree,
		Evictor: evictor, Store: store, DryRun: o.evict.DryRun, Clock: clk, Logger: log, Registerer: reg,
		WatchClient: watchClient, AgentCondition: nodestatus.ConditionType, RosterName: roster.DefaultName,
		APIReachable: apiOK, Advertiser: members, Recorder: recorder,
	})
}

// The client-side rate limit of Event writes: the burst covers the Events
// of a failover of a node with 50 pods at once (one per pod, about ten on
// the record and the Node); those of a node with the kubelet's default of
// 110 pods take about 7 s more.
const (
	eventQPS   = 10
	eventBurst = 60
)

// kubeConfig returns the API client config: from --kubeconfig, else the
// in-cluster one when running in a pod, else nil (no API).
func kubeConfig(path string, getenv func(string) string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch {
	case path != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
		}
	case getenv("KUBERNETES_SERVICE_HOST") != "":
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config: %w", err)
		}
	default:
		return nil, nil
	}
	cfg.UserAgent = "haagent/" + version.Version
	// Fail fast: a failover must not wait on a hung connection.
	cfg.Timeout = 10 * time.Second
	return cfg, nil
}

// exportMemberlistMetrics installs the process-wide go-metrics sink that
// memberlist reports to: gossip.MemberlistSink, which exports the figures
// that matter as haagent_gossip_* metrics, and with raw also go-metrics'
// Prometheus sink, which exports every figure as it comes
// (haagent_memberlist_*, in milliseconds).
func exportMemberlistMetrics(reg prometheus.Registerer, raw bool) error {
	conf := gometrics.DefaultConfig("haagent")
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableRuntimeMetrics = false
	var sink gometrics.MetricSink
	sink, err := gossip.NewMemberlistSink(reg, conf.TimerGranularity)
	if err != nil {
		return err
	}
	if raw {
		rawSink, err := gometricsprom.NewPrometheusSinkFrom(gometricsprom.PrometheusOpts{
			Registerer: reg,
			Expiration: 5 * time.Minute,
			Name:       "haagent_memberlist",
		})
		if err != nil {
			return fmt.Errorf("memberlist metrics: %w", err)
		}
		sink = gometrics.FanoutSink{sink, rawSink}
	}
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		return fmt.Errorf("memberlist metrics: %w", err)
	}
	return nil
}

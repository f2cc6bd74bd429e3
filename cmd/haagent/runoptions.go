package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/haagent/haagent/agent/agreement"
	"github.com/haagent/haagent/agent/api"
	"github.com/haagent/haagent/agent/coordinator"
	"github.com/haagent/haagent/agent/evict"
	"github.com/haagent/haagent/agent/fence"
	"github.com/haagent/haagent/agent/gossip"
	"github.com/haagent/haagent/agent/httpauth"
	"github.com/haagent/haagent/agent/probe"
	"github.com/haagent/haagent/internal/logging"
	"github.com/haagent/haagent/internal/version"
)

// runOptions is everything `haagent run` is configured with.
type runOptions struct {
	configPath        string
	gossip            gossip.Config
	logging           logging.Config
	api               api.Config
	httpAuth          httpauth.Config
	probe             probe.Config
	peer              probe.PeerConfig
	agreement         agreement.Config
	coordinator       coordinator.Config
	evict             evict.Config
	fence             fence.Config
	join              listFlag
	kubeconfig        string
	apiQPS            float64
	apiBurst          int
	namespace         string
	discoverySelector string
	admission         bool
	// rawMemberlistMetrics also exports every go-metrics figure of
	// memberlist as it comes, named haagent_memberlist_*.
	rawMemberlistMetrics bool
}

func defaultRunOptions() runOptions {
	return runOptions{
		gossip:            gossip.DefaultConfig(),
		logging:           logging.DefaultConfig(),
		api:               api.DefaultConfig(),
		httpAuth:          httpauth.DefaultConfig(),
		probe:             probe.DefaultConfig(),
		peer:              probe.DefaultPeerConfig(),
		agreement:         agreement.DefaultConfig(),
		coordinator:       coordinator.DefaultConfig(),
		evict:             evict.DefaultConfig(),
		fence:             fence.DefaultConfig(),
		discoverySelector: "app.kubernetes.io/name=haagent",
		admission:         true,
		apiQPS:            50,
		apiBurst:          100,
	}
}

func (o *runOptions) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.configPath, "config", o.configPath, "YAML config file: flag names as keys, plus a checks: list; flags and environment override it")
	o.gossip.RegisterFlags(fs)
	o.logging.RegisterFlags(fs)
	o.api.RegisterFlags(fs)
	o.httpAuth.RegisterFlags(fs)
	fs.IntVar(&o.probe.MaxConcurrent, "check-max-concurrent", o.probe.MaxConcurrent, "most node checks running at once")
	fs.DurationVar(&o.probe.NotReadyFailoverAfter, "not-ready-failover-after", o.probe.NotReadyFailoverAfter, "fail over a node alive on gossip but not ready this long (0: never)")
	fs.IntVar(&o.peer.Port, "peer-check-port", o.peer.Port, "kubelet port checked on a node that gossip declares dead")
	fs.DurationVar(&o.peer.Timeout, "peer-check-timeout", o.peer.Timeout, "timeout of one kubelet port check")
	fs.IntVar(&o.peer.Attempts, "peer-check-attempts", o.peer.Attempts, "TCP connects of one kubelet port check, made at once; any that succeeds makes the node reachable")
	fs.IntVar(&o.peer.MaxConcurrent, "peer-check-max-concurrent", o.peer.MaxConcurrent, "most kubelet port checks at once")
	o.agreement.RegisterFlags(fs)
	o.coordinator.RegisterFlags(fs)
	o.evict.RegisterFlags(fs)
	o.fence.RegisterFlags(fs)
	fs.Var(&o.join, "join", "seed peer host[:port] to join; repeat or separate with commas")
	fs.StringVar(&o.kubeconfig, "kubeconfig", o.kubeconfig, "kubeconfig file; empty means in-cluster when run in a pod, else no Kubernetes API")
	fs.Float64Var(&o.apiQPS, "kube-api-qps", o.apiQPS, "most requests per second to the API server, sustained (client-side limit; client-go's default of 5 would stall a failover, which sends a burst of writes)")
	fs.IntVar(&o.apiBurst, "kube-api-burst", o.apiBurst, "most requests to the API server in one burst")
	fs.StringVar(&o.namespace, "namespace", o.namespace, "namespace of the haagent pods (env POD_NAMESPACE)")
	fs.StringVar(&o.discoverySelector, "discovery-selector", o.discoverySelector, "label selector of the haagent pods to join")
	fs.BoolVar(&o.admission, "admission", o.admission, "admit only gossip peers named after a Node, at that Node's address (needs the API)")
	fs.BoolVar(&o.rawMemberlistMetrics, "memberlist-raw-metrics", o.rawMemberlistMetrics, "also export memberlist's own figures as they come, as haagent_memberlist_* (camelCase names, milliseconds; for debugging memberlist; the ones that matter are haagent_gossip_* metrics)")
}

// addFlags registers the flags of `haagent run` on fs: the components'
// Go flags, bridged to pflag (--name).
func (o *runOptions) addFlags(fs *pflag.FlagSet) {
	gfs := flag.NewFlagSet("haagent run", flag.ContinueOnError)
	o.registerFlags(gfs)
	addGoFlags(fs, gfs)
}

// parseRunOptions reads flags, environment and the config file, and
// validates the result.
func parseRunOptions(args []string, getenv func(string) string, output io.Writer) (runOptions, error) {
	o := defaultRunOptions()
	fs := pflag.NewFlagSet("haagent run", pflag.ContinueOnError)
	fs.SetOutput(output)
	o.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, o.complete(fs, fs.Args(), getenv)
}

// complete applies the environment and the config file to the flags parsed
// into fs, and validates the result.
func (o *runOptions) complete(fs *pflag.FlagSet, args []string, getenv func(string) string) error {
	if len(args) > 0 {
		return fmt.Errorf("haagent run takes no arguments, got %q", args)
	}
	sections, err := settle(fs, o.configPath, getenv)
	if err != nil {
		return err
	}
	if raw, ok := sections["checks"]; ok {
		doc, _ := json.Marshal(map[string]json.RawMessage{"checks": raw})
		if o.probe.Checks, err = probe.ParseChecks(doc); err != nil {
			return fmt.Errorf("config file %s: %w", o.configPath, err)
		}
	}
	o.gossip.AgentVersion = version.Version
	for _, v := range []interface{ Validate() error }{o.logging, o.gossip, o.api, o.httpAuth, o.probe, o.peer, o.agreement, o.evict, o.fence} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	switch {
	case !(o.apiQPS >= 1 && o.apiQPS <= 1000):
		return fmt.Errorf("--kube-api-qps (%g) must be between 1 and 1000", o.apiQPS)
	case o.apiBurst < int(o.apiQPS) || o.apiBurst > 2000:
		return fmt.Errorf("--kube-api-burst (%d) must be between --kube-api-qps (%g) and 2000", o.apiBurst, o.apiQPS)
	}
	if o.httpAuth.Mode == httpauth.ModeKubernetes && o.kubeconfig == "" && getenv("KUBERNETES_SERVICE_HOST") == "" {
		return errors.New("httpauth: --http-auth=kubernetes needs the Kubernetes API: set --kubeconfig or run in a pod")
	}
	o.coordinator.Decide.NotReadyAfter = o.probe.NotReadyFailoverAfter
	o.coordinator.Fence = o.fenceTerms()
	return o.coordinator.Validate()
}

// fenceTerms are the settings that bound how long a cut-off node may keep
// running its pods, for the coordinator's --fence-bound.
func (o runOptions) fenceTerms() coordinator.FenceTerms {
	t := coordinator.FenceTerms{
		IsolationTimeout: o.gossip.IsolationBound(),
		APICheck:         apiCheckTime(o.probe.Checks),
		After:            o.fence.After,
		CheckInterval:    o.fence.CheckInterval,
		ActionTime:       o.fence.ActionTime(),
	}
	switch o.fence.Action {
	case "command":
		t.ActionFlag = "--fence-command-timeout"
	case "watchdog":
		t.ActionFlag = "--watchdog-timeout"
	}
	return t
}

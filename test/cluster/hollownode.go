package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/validation"
)

// runtimePollInterval is how often a hollow node's fake runtime is read
// for the Journal. A run's start is the runtime's own record of its
// container's start, exact; its end is seen up to this late, which only
// ever makes a run longer, so an overlap found is never an artefact.
const runtimePollInterval = 200 * time.Millisecond

// startHollowNode starts a node of the hollow ground (NodeConfig.Hollow):
// its kubelet (waiting until the Node is Ready) and its agent, both in the
// node's namespace.
func startHollowNode(ctx context.Context, cp *ControlPlane, cfg NodeConfig) (*Node, error) {
	name := cfg.Kubelet.NodeName
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("cluster: NodeName (%q) is not a valid node name: %s", name, strings.Join(errs, "; "))
	}
	if cfg.Net == nil {
		return nil, fmt.Errorf("cluster: hollow node %s: Net is nil; a hollow node needs a namespace of its own (Network.AddNode)", name)
	}
	if cfg.Net.Name() != name {
		return nil, fmt.Errorf("cluster: hollow node %s: Net is node %s's namespace", name, cfg.Net.Name())
	}
	if cfg.AgentServiceAccount == [2]string{} {
		cfg.AgentServiceAccount = [2]string{"haagent", "haagent"}
	}
	log := cfg.Kubelet.Logger
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{
		cfg: cfg,
		cp:  cp,
		log: log.Named("node").With(zap.String("node", name), zap.String("ground", "hollow")),
		dir: filepath.Join(cp.Dir(), "nodes", name),
	}
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return n, err
	}
	// The harness reaches the node's proxy from the hub; the kubelet, from
	// inside the node, at the same address.
	n.rest = cp.RESTConfig()
	n.rest.Host = cfg.Net.APIServerURL()
	n.rest.TLSClientConfig.ServerName = apiServerName
	n.rest.Dial = cfg.Net.net.DialContext

	hc := *cfg.Hollow
	hc.NodeName = name
	hc.Dir = filepath.Join(n.dir, "kubelet")
	hc.RESTConfig = cp.RESTConfig()
	hc.RESTConfig.Host = cfg.Net.APIServerURL()
	hc.RESTConfig.TLSClientConfig.ServerName = apiServerName
	hc.APIClient = cp.Client()
	hc.Netns = cfg.Net.NetNS()
	hc.FenceFile = cfg.Kubelet.FenceFile
	if hc.Logger == nil {
		hc.Logger = log
	}
	if hc.KubeletPort == 0 {
		hc.KubeletPort = hollowKubeletPort
	}
	k, err := NewHollowKubelet(hc)
	if err != nil {
		return n, err
	}
	n.hollow = &hollowGround{k: k, journal: cfg.Kubelet.Journal, node: name, log: n.log}
	if err := n.hollow.boot(ctx); err != nil {
		return n, err
	}
	if cfg.Agent == nil {
		return n, nil
	}
	ac := *cfg.Agent
	cfg.Net.ConfigureAgent(&ac)
	return n, n.startAgent(ctx, ac)
}

// HollowKubelet is the node's kubemark kubelet on the hollow ground, nil
// on the fake ground.
func (n *Node) HollowKubelet() *HollowKubelet {
	if n.hollow == nil {
		return nil
	}
	return n.hollow.k
}

// Ground names the node's ground: "fake" (a FakeKubelet on the host's
// loopback) or "hollow" (a kubemark kubelet in a namespace of its own).
func (n *Node) Ground() string {
	if n.hollow != nil {
		return "hollow"
	}
	return "fake"
}

// crashHollow powers a hollow node off: its link goes down (peers see
// timeouts), its agent and its kubelet get SIGKILL.
func (n *Node) crashHollow() (time.Time, error) {
	at := time.Now()
	f, err := n.cfg.Net.LinkDown()
	if err != nil {
		return at, err
	}
	n.mu.Lock()
	n.down = f
	a := n.agent
	n.mu.Unlock()
	var errs []error
	if a != nil && a.Running() {
		errs = append(errs, a.Kill())
	}
	errs = append(errs, n.hollow.kill("crashed"))
	n.log.Info("node crashed")
	return at, errors.Join(errs...)
}

// hollowGround is a hollow node's kubelet and the watch that journals its
// fake runtime's containers, boot by boot.
type hollowGround struct {
	k       *HollowKubelet
	journal *Journal // nil: no journal
	node    string
	log     *zap.Logger

	mu    sync.Mutex
	boots int
	watch *runtimeWatch // the current boot's; nil while the kubelet is down
}

// boot starts the kubelet, waits until its Node is Ready, and starts
// journalling its runtime.
func (h *hollowGround) boot(ctx context.Context) error {
	if err := h.k.Start(ctx); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.boots++
	if h.journal != nil {
		h.watch = newRuntimeWatch(h.k, h.journal, h.node, fmt.Sprintf("%s-boot-%d", h.node, h.boots), h.log)
		go h.watch.run()
	}
	return nil
}

// kill powers the kubelet off if it runs, and ends its runs in the
// journal as of the instant it was dead, for reason.
func (h *hollowGround) kill(reason string) error {
	h.mu.Lock()
	w := h.watch
	h.watch = nil
	h.mu.Unlock()
	if w != nil {
		w.close()
	}
	var err error
	if h.k.Running() {
		err = h.k.Kill()
	}
	if w != nil {
		h.journal.stopBoot(w.boot, reason, time.Now())
	}
	return err
}

// stop ends the kubelet for good.
func (h *hollowGround) stop() error {
	h.mu.Lock()
	w := h.watch
	h.watch = nil
	h.mu.Unlock()
	if w != nil {
		w.close()
	}
	err := h.k.Stop(10 * time.Second)
	if w != nil {
		h.journal.stopBoot(w.boot, "stopped", time.Now())
	}
	return err
}

// runtimeWatch reads one boot's fake runtime every runtimePollInterval and
// records in a Journal where each pod's containers run: from the runtime's
// start time of the pod's first running container until none of them
// runs (the runtime's finish time when it still lists them, else the
// instant the poll found them gone), or until the kubelet died (the
// harness's instant of the fence). Containers that started and ended
// between two polls are recorded from the runtime's times.
type runtimeWatch struct {
	k       *HollowKubelet
	j       *Journal
	node    string
	boot    string
	log     *zap.Logger
	stopCh  chan struct{}
	done    chan struct{}
	running map[string]bool // pod UIDs with a run open in the journal
	counted map[string]bool // container IDs already part of a run
}

func newRuntimeWatch(k *HollowKubelet, j *Journal, node, boot string, log *zap.Logger) *runtimeWatch {
	return &runtimeWatch{k: k, j: j, node: node, boot: boot, log: log,
		stopCh: make(chan struct{}), done: make(chan struct{}),
		running: map[string]bool{}, counted: map[string]bool{}}
}

func (w *runtimeWatch) run() {
	defer close(w.done)
	w.log.Info("watching the fake runtime", zap.String("boot", w.boot))
	polls := 0
	defer func() { w.log.Info("runtime watch ended", zap.String("boot", w.boot), zap.Int("polls", polls)) }()
	t := time.NewTicker(runtimePollInterval)
	defer t.Stop()
	last := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), criCallTimeout)
		pods, err := w.k.RuntimePods(ctx)
		cancel()
		switch {
		case err == nil:
			polls++
			if sum := summarize(pods); sum != last {
				w.log.Info("fake runtime changed", zap.String("boot", w.boot), zap.String("listing", sum))
				last = sum
			}
			w.observe(pods, time.Now())
		case !w.k.Running():
			// Fenced: the switch recorded the instant before the kill.
			if at, ok := w.k.Fenced(); ok {
				w.j.stopBoot(w.boot, "fenced", at)
			} else {
				w.j.stopBoot(w.boot, "crashed", time.Now())
			}
			return
		default:
			w.log.Warn("read fake runtime", zap.Error(err))
		}
		select {
		case <-w.stopCh:
			return
		case <-t.C:
		}
	}
}

// summarize is a listing in one line: each sandbox and its containers'
// states.
func summarize(pods []RuntimePod) string {
	var b strings.Builder
	for i, p := range pods {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s/%s[ready=%t", p.Namespace, p.Name, p.Ready)
		for _, c := range p.Containers {
			fmt.Fprintf(&b, " %s:%s", c.Name, c.State)
		}
		b.WriteString("]")
	}
	if b.Len() == 0 {
		return "no sandboxes"
	}
	return b.String()
}

// observe records what one listing shows, read at now.
func (w *runtimeWatch) observe(pods []RuntimePod, now time.Time) {
	live := map[string]bool{}
	for _, p := range pods {
		key := p.Namespace + "/" + p.Name
		var start, finished time.Time
		running := false
		for _, c := range p.Containers {
			if c.Running() {
				running = true
				w.counted[c.ID] = true
				if start.IsZero() || (!c.Started.IsZero() && c.Started.Before(start)) {
					start = c.Started
				}
			} else if c.Finished.After(finished) {
				finished = c.Finished
			}
		}
		if running {
			live[p.UID] = true
			if !w.running[p.UID] {
				if start.IsZero() {
					start = now
				}
				w.j.start(key, p.UID, w.node, w.boot, start)
				w.running[p.UID] = true
				w.log.Info("containers run", zap.String("pod", key), zap.String("uid", p.UID), zap.Time("started", start))
			}
			continue
		}
		if w.running[p.UID] {
			// Its containers stopped since the last poll.
			at := now
			if !finished.IsZero() && finished.Before(now) {
				at = finished
			}
			w.j.stop(p.UID, w.boot, "stopped", at)
			delete(w.running, p.UID)
		}
		// Containers that ran and ended between two polls.
		for _, c := range p.Containers {
			if w.counted[c.ID] || c.Started.IsZero() || c.Finished.IsZero() {
				continue
			}
			w.counted[c.ID] = true
			w.j.start(key, p.UID, w.node, w.boot, c.Started)
			w.j.stop(p.UID, w.boot, "stopped", c.Finished)
		}
	}
	for uid := range w.running {
		if !live[uid] {
			// The sandbox is gone from the listing: stopped by now.
			w.j.stop(uid, w.boot, "stopped", now)
			delete(w.running, uid)
		}
	}
}

func (w *runtimeWatch) close() {
	select {
	case <-w.stopCh:
	default:
		close(w.stopCh)
	}
	<-w.done
}

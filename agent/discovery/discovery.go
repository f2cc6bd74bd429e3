// Package discovery finds the gossip addresses of other haagent agents: from
// static seeds given on the command line, and from the Kubernetes API (the
// other haagent pods of the DaemonSet). It implements gossip.PeerSource and
// only reads from the API.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// Static is a fixed list of host:port seeds (the --join flag).
type Static []string

// Peers returns the seeds.
func (s Static) Peers(context.Context) ([]string, error) {
	return append([]string(nil), s...), nil
}

// ParseSeeds checks --join values: host:port, or a host alone, which gets
// defaultPort.
func ParseSeeds(values []string, defaultPort int) (Static, error) {
	var out Static
	for _, v := range values {
		if v == "" {
			continue
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			host, port = v, strconv.Itoa(defaultPort)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || host == "" {
			return nil, fmt.Errorf("discovery: --join %q must be host:port with a port between 1 and 65535", v)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// Kubernetes lists the haagent pods of one namespace by label. The agents
// run with hostNetwork, so a pod's IP is its node's address and the gossip
// port is the same on every node.
type Kubernetes struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  labels.Selector
	Port      int
}

// NewKubernetes checks the label selector (the --discovery-selector flag).
func NewKubernetes(c kubernetes.Interface, namespace, selector string, port int) (*Kubernetes, error) {
	if namespace == "" {
		return nil, errors.New("discovery: --namespace is required for Kubernetes discovery (or set POD_NAMESPACE)")
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("discovery: --discovery-selector (%q): %v", selector, err)
	}
	if sel.Empty() {
		return nil, fmt.Errorf("discovery: --discovery-selector must not be empty: it would select every pod of namespace %s", namespace)
	}
	return &Kubernetes{Client: c, Namespace: namespace, Selector: sel, Port: port}, nil
}

// Peers returns the gossip addresses of the running agent pods, sorted.
func (k *Kubernetes) Peers(ctx context.Context) ([]string, error) {
	// ResourceVersion "0" lets the API server answer from its cache: this
	// runs on every node every rejoin interval.
	pods, err := k.Client.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector:   k.Selector.String(),
		ResourceVersion: "0",
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: list agent pods in %s: %w", k.Namespace, err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		out = append(out, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(k.Port)))
	}
	sort.Strings(out)
	return out, nil
}

// Union asks every source and merges their answers. It fails only when
// every source fails, so the API being down does not hide the static seeds.
type Union []interface {
	Peers(ctx context.Context) ([]string, error)
}

// Peers merges the answers of all sources, without duplicates.
func (u Union) Peers(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	var errs []error
	for _, s := range u {
		peers, err := s.Peers(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range peers {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	if len(errs) > 0 && len(errs) == len(u) {
		return nil, errors.Join(errs...)
	}
	sort.Strings(out)
	return out, nil
}

// Fallback answers from Primary, and asks Secondary only when Primary
// names no peer: the roster, once there is one, spares every agent a list
// of every agent pod at each rejoin.
type Fallback struct {
	Primary   func() []string
	Secondary interface {
		Peers(ctx context.Context) ([]string, error)
	}
}

// Peers returns Primary's peers, sorted, or else Secondary's answer.
func (f Fallback) Peers(ctx context.Context) ([]string, error) {
	if peers := f.Primary(); len(peers) > 0 {
		out := append([]string(nil), peers...)
		sort.Strings(out)
		return out, nil
	}
	return f.Secondary.Peers(ctx)
}

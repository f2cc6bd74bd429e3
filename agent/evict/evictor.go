package evict

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// Deps are what an Evictor needs from outside.
type Deps struct {
	// Client is used for every read and write.
	Client kubernetes.Interface
	// Recorder records the Events on the Node. Its source component should
	// be "haagent".
	Recorder record.EventRecorder
	// Logger is named "evict" by New.
	Logger     *zap.Logger
	Registerer prometheus.Registerer
	// Clock stamps taints and conditions; the real clock when nil.
	Clock clock.PassiveClock
}

// Evictor performs the API actions of a failover. Every method is
// idempotent and keeps its state in the API objects, so a coordinator that
// takes over after a restart calls the same methods again and they finish
// what is left. Methods are safe for concurrent use.
type Evictor struct {
	cfg      Config
	client   kubernetes.Interface
	recorder record.EventRecorder
	log      *zap.Logger
	clock    clock.PassiveClock
	metrics  *metrics
}

// New validates cfg and registers the metrics. It starts nothing.
func New(cfg Config, deps Deps) (*Evictor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Client == nil || deps.Recorder == nil || deps.Logger == nil || deps.Registerer == nil {
		return nil, errors.New("evict: New needs Client, Recorder, Logger and Registerer")
	}
	m, err := newMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	e := &Evictor{
		cfg: cfg, client: deps.Client, recorder: deps.Recorder,
		log: deps.Logger.Named("evict"), clock: deps.Clock, metrics: m,
	}
	if e.clock == nil {
		e.clock = clock.RealClock{}
	}
	return e, nil
}

// NodeResult is the result of an action on the Node object.
type NodeResult struct {
	// Changed is true when the action wrote to the Node (in a dry run: would
	// have written). False means the node already was as wanted.
	Changed bool
	// DryRun is true when the write was a server-side dry run.
	DryRun bool
}

// dryRun returns the DryRun option of every write.
func (e *Evictor) dryRun() []string {
	if e.cfg.DryRun {
		return []string{metav1.DryRunAll}
	}
	return nil
}

func (e *Evictor) patchOptions() metav1.PatchOptions {
	return metav1.PatchOptions{FieldManager: FieldManager, DryRun: e.dryRun()}
}

// finish counts one action call by its result.
func (e *Evictor) finish(a Action, err error) {
	r := resultSuccess
	switch {
	case err != nil:
		r = resultError
	case e.cfg.DryRun:
		r = resultDryRun
	}
	e.metrics.actions.WithLabelValues(string(a), r).Inc()
}

// event records an Event on the node, except in a dry run.
func (e *Evictor) event(node *corev1.Node, eventType, reason, format string, args ...any) {
	if e.cfg.DryRun {
		return
	}
	e.recorder.Eventf(node, eventType, reason, format, args...)
}

// apiError classifies a failed request: a missing node becomes
// ErrNodeNotFound, everything else an *APIError to retry with backoff.
func (e *Evictor) apiError(a Action, node string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrOptedOut) || errors.Is(err, ErrNodeReady) || errors.Is(err, ErrNodeRenewed) ||
		errors.Is(err, ErrNotOutOfService) || errors.Is(err, ErrNodeNotFound) {
		return err
	}
	if apierrors.IsNotFound(err) {
		return nodeNotFound(a, node, err)
	}
	return &APIError{Action: a, Node: node, Err: err}
}

func (e *Evictor) getNode(ctx context.Context, a Action, name string) (*corev1.Node, error) {
	start := e.clock.Now()
	n, err := e.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	e.metrics.observe(a, e.clock.Since(start))
	if err != nil {
		return nil, e.apiError(a, name, err)
	}
	return n, nil
}

// nodeChange mutates a copy of the node and reports whether it changed
// anything. It may refuse with an error, which ends the action.
type nodeChange func(n *corev1.Node) (bool, error)

// patchNode reads the node, applies change to a copy and writes the
// difference as a strategic merge patch that carries the resourceVersion it
// was computed from. The API server refuses the patch with 409 Conflict if
// the node changed in between (taint lists are replaced whole, so this
// matters); then the node is read again and change applied afresh.
// subresource is "" or "status". It returns the node as read last and
// whether a write was sent.
func (e *Evictor) patchNode(ctx context.Context, a Action, name, subresource string, change nodeChange) (*corev1.Node, bool, error) {
	var (
		node    *corev1.Node
		changed bool
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := e.getNode(ctx, a, name)
		if err != nil {
			return err
		}
		node, changed = cur, false
		upd := cur.DeepCopy()
		ok, err := change(upd)
		if err != nil || !ok {
			return err
		}
		patch, err := diffPatch(cur, upd, corev1.Node{}, cur.ResourceVersion)
		if err != nil {
			return err
		}
		var sub []string
		if subresource != "" {
			sub = []string{subresource}
		}
		start := e.clock.Now()
		_, err = e.client.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, patch, e.patchOptions(), sub...)
		e.metrics.observe(a, e.clock.Since(start))
		if err != nil {
			return err
		}
		node, changed = upd, true
		return nil
	})
	if err != nil {
		return nil, false, e.apiError(a, name, err)
	}
	return node, changed, nil
}

// diffPatch returns the strategic merge patch from old to upd, with
// metadata.resourceVersion set to rv as a precondition.
func diffPatch(old, upd, dataStruct any, rv string) ([]byte, error) {
	o, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	u, err := json.Marshal(upd)
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(o, u, dataStruct)
	if err != nil {
		return nil, fmt.Errorf("evict: build patch: %w", err)
	}
	if rv == "" {
		return p, nil
	}
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, err
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		m["metadata"] = md
	}
	md["resourceVersion"] = rv
	return json.Marshal(m)
}

// nodeReady returns the status of the node's Ready condition, Unknown when
// there is none.
func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

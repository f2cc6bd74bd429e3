package evict

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/drain"
)

// maxNamesInEvent bounds the pod names listed in one Event message.
const maxNamesInEvent = 10

// EvictPods requests, through the Eviction API (policy/v1), the eviction of
// the pods of the node that can be replaced elsewhere without waiting for a
// fence, and classifies every pod of the node:
//
//   - DaemonSet and mirror pods, pods that have finished and pods already
//     terminating are skipped (kubectl's drain filters decide the first two);
//   - StatefulSet pods and pods with a ReadWriteOnce or ReadWriteOncePod
//     claim are fenced-only: not evicted here, returned for ForceDeletePods
//     after the fence, so that two copies never run;
//   - the others are evicted, at most Config.MaxPodsPerNode per call; the
//     rest are deferred to the next call.
//
// It does not wait for the pods to go away: on a dead node no kubelet
// finishes them, they stay Terminating, and their controllers replace them at
// once. Calling it again evicts only what is left (blocked, failed, deferred),
// so the caller repeats it with backoff until PodsResult.Done. A pod blocked
// by a PodDisruptionBudget (429) is never deleted instead.
//
// The error is for the call as a whole (node missing, opted out, pods,
// DaemonSets or claims not readable): then nothing was evicted, since the
// pods could not be told apart safely. Per-pod errors are in the result.
func (e *Evictor) EvictPods(ctx context.Context, node string) (PodsResult, error) {
	res, err := e.evictPods(ctx, node)
	if err == nil && res.Count(PodFailed) > 0 {
		e.finish(ActionEvictPods, res.Err())
	} else {
		e.finish(ActionEvictPods, err)
	}
	if err != nil {
		e.log.Warn("evicting pods failed", zap.String("node", node), zap.Error(err))
	}
	return res, err
}

func (e *Evictor) evictPods(ctx context.Context, node string) (PodsResult, error) {
	res := PodsResult{Node: node, DryRun: e.cfg.DryRun}
	n, h, classified, candidates, err := e.classifyPods(ctx, ActionEvictPods, node)
	if err != nil {
		return res, err
	}
	res.Pods = classified
	evicted := make([]PodResult, len(candidates))
	e.forEach(len(candidates), func(i int) {
		evicted[i] = e.evictPod(ctx, h, node, candidates[i])
	})
	res.Pods = append(res.Pods, evicted...)
	sortResults(res.Pods)
	e.report(n, res)
	return res, nil
}

// PodsAwaitingFence returns the pods of the node that EvictPods holds back
// for the fence (StatefulSet pods, pods with a single-node claim), by the
// same rules, terminating ones included: while such a pod object exists its
// controller starts no replacement. It writes nothing. A deleted Node gives
// ErrNodeNotFound, an opted-out one ErrOptedOut.
func (e *Evictor) PodsAwaitingFence(ctx context.Context, node string) ([]PodRef, error) {
	_, _, classified, _, err := e.classifyPods(ctx, ActionPodsAwaitingFence, node)
	e.finish(ActionPodsAwaitingFence, err)
	if err != nil {
		return nil, err
	}
	return PodsResult{Pods: classified}.FencedOnly(), nil
}

// classifyPods reads the node and its pods and sorts the pods out as
// EvictPods documents: it returns the outcome of every pod that is not to
// be evicted in this call, and the pods to evict. It writes nothing.
func (e *Evictor) classifyPods(ctx context.Context, a Action, node string) (*corev1.Node, *drain.Helper, []PodResult, []corev1.Pod, error) {
	n, err := e.failoverNode(ctx, a, node)
	if err != nil {
		return nil, nil, nil, nil, err
	}

	rec := &podListRecorder{Interface: e.client}
	h := e.drainHelper(ctx, rec)
	start := e.clock.Now()
	list, errs := h.GetPodsForDeletion(node)
	e.metrics.observe(a, e.clock.Since(start))
	if len(errs) > 0 {
		// A failed list, or a DaemonSet that could not be read: the pods
		// cannot be told apart safely. Nothing is evicted; retry.
		return nil, nil, nil, nil, &APIError{Action: a, Node: node, Err: errors.Join(errs...)}
	}
	deletable := map[string]bool{}
	for _, p := range list.Pods() {
		deletable[p.Namespace+"/"+p.Name] = true
	}
	pods := onNode(rec.items(), node)

	rwo, err := e.rwoClaims(ctx, a, node, pods)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var out []PodResult
	var candidates []corev1.Pod
	for i := range pods {
		p := &pods[i]
		r := PodResult{Pod: refOf(p)}
		switch {
		case !deletable[p.Namespace+"/"+p.Name]:
			r.Outcome, r.Detail = PodSkipped, drainSkipDetail(p)
		case finished(p):
			r.Outcome, r.Detail = PodSkipped, SkipFinished
		case isStatefulSetPod(p):
			r.Outcome, r.Detail = PodFencedOnly, FencedStatefulSet
		case hasRWOClaim(p, rwo):
			r.Outcome, r.Detail = PodFencedOnly, FencedRWOVolume
		case p.DeletionTimestamp != nil:
			r.Outcome, r.Detail = PodSkipped, SkipTerminating
		case len(candidates) >= e.cfg.MaxPodsPerNode:
			r.Outcome = PodDeferred
		default:
			candidates = append(candidates, *p)
			continue
		}
		out = append(out, r)
	}
	return n, h, out, candidates, nil
}

func (e *Evictor) evictPod(ctx context.Context, h *drain.Helper, node string, p corev1.Pod) PodResult {
	r := PodResult{Pod: refOf(&p)}
	if err := ctx.Err(); err != nil {
		r.Outcome, r.Err = PodFailed, &APIError{Action: ActionEvictPods, Node: node, Pod: r.Pod.String(), Err: err}
		return r
	}
	start := e.clock.Now()
	err := h.EvictPod(p, policyv1.SchemeGroupVersion)
	e.metrics.observe(ActionEvictPods, e.clock.Since(start))
	switch {
	case err == nil:
		r.Outcome = PodEvicted
	case apierrors.IsNotFound(err):
		r.Outcome = PodGone
	case apierrors.IsTooManyRequests(err):
		r.Outcome, r.Err = PodPDBBlocked, &PDBBlockedError{Node: node, Pod: r.Pod, Err: err}
	default:
		r.Outcome, r.Err = PodFailed, &APIError{Action: ActionEvictPods, Node: node, Pod: r.Pod.String(), Err: err}
	}
	return r
}

// report logs every pod outcome, counts them and records the Events.
func (e *Evictor) report(n *corev1.Node, res PodsResult) {
	var blocked []string
	for _, p := range res.Pods {
		f := []zap.Field{zap.String("node", n.Name), zap.Stringer("pod", p.Pod), zap.Bool("dry_run", e.cfg.DryRun)}
		switch p.Outcome {
		case PodEvicted:
			e.log.Info("pod evicted", f...)
		case PodGone:
			e.log.Info("pod already gone", f...)
		case PodPDBBlocked:
			blocked = append(blocked, p.Pod.String())
			e.log.Info("pod eviction blocked", append(f, zap.Error(p.Err))...)
		case PodFailed:
			e.log.Warn("pod eviction failed", append(f, zap.Error(p.Err))...)
		case PodFencedOnly:
			e.log.Info("pod waits for fence", append(f, zap.String("reason", p.Detail))...)
		case PodDeferred:
			e.log.Info("pod eviction deferred", f...)
		case PodSkipped:
			e.log.Debug("pod skipped", append(f, zap.String("reason", p.Detail))...)
		}
		switch p.Outcome {
		case PodEvicted, PodGone, PodPDBBlocked, PodFailed, PodSkipped:
			if !e.cfg.DryRun {
				e.metrics.evictions.WithLabelValues(string(p.Outcome)).Inc()
			}
		}
	}
	if c := res.Count(PodEvicted); c > 0 {
		e.event(n, corev1.EventTypeNormal, ReasonEvicted, "haagent evicted %d pods; %d wait for the node to be fenced", c, res.Count(PodFencedOnly))
	}
	if len(blocked) > 0 {
		more := ""
		if len(blocked) > maxNamesInEvent {
			more = fmt.Sprintf(" and %d more", len(blocked)-maxNamesInEvent)
			blocked = blocked[:maxNamesInEvent]
		}
		e.event(n, corev1.EventTypeWarning, ReasonEvictionBlocked, "Eviction blocked by disruption budgets, will retry: %s%s", strings.Join(blocked, ", "), more)
	}
}

// drainHelper configures kubectl's drain helper for a dead node: DaemonSet
// pods are ignored, emptyDir data is given up (the node is gone anyway), pods
// without a controller are evicted too (Force), and nothing is waited for.
func (e *Evictor) drainHelper(ctx context.Context, c kubernetes.Interface) *drain.Helper {
	h := &drain.Helper{
		Ctx:                 ctx,
		Client:              c,
		Force:               true,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		GracePeriodSeconds:  int(e.cfg.EvictionGracePeriod / time.Second),
		Out:                 io.Discard,
		ErrOut:              io.Discard,
	}
	if h.GracePeriodSeconds == 0 {
		h.GracePeriodSeconds = -1 // the pod's own
	}
	if e.cfg.DryRun {
		h.DryRunStrategy = cmdutil.DryRunServer
	}
	return h
}

func drainSkipDetail(p *corev1.Pod) string {
	if _, ok := p.Annotations[corev1.MirrorPodAnnotationKey]; ok {
		return SkipMirror
	}
	if c := metav1.GetControllerOf(p); c != nil && c.Kind == "DaemonSet" {
		return SkipDaemonSet
	}
	return SkipDrainFilter
}

func isStatefulSetPod(p *corev1.Pod) bool {
	c := metav1.GetControllerOf(p)
	return c != nil && c.Kind == "StatefulSet" && strings.HasPrefix(c.APIVersion, "apps/")
}

// claimNames returns the names of the claims of the pod's volumes, generic
// ephemeral volumes included (their claim is named pod-volume).
func claimNames(p *corev1.Pod) []string {
	var out []string
	for _, v := range p.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, p.Name+"-"+v.Name)
		}
	}
	return out
}

func hasRWOClaim(p *corev1.Pod, rwo map[string]bool) bool {
	for _, c := range claimNames(p) {
		if rwo[p.Namespace+"/"+c] {
			return true
		}
	}
	return false
}

// rwoClaims reads the claims of the pods that could be evicted and returns,
// by "namespace/name", whether each is single-node: ReadWriteOnce or
// ReadWriteOncePod in its spec or status. A claim that does not exist counts
// as single-node, which keeps its pod for the fence: the safe side. Any other
// read error fails the call, since guessing could run two copies.
func (e *Evictor) rwoClaims(ctx context.Context, a Action, node string, pods []corev1.Pod) (map[string]bool, error) {
	var keys []string
	seen := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		if finished(p) || isStatefulSetPod(p) {
			continue
		}
		for _, c := range claimNames(p) {
			k := p.Namespace + "/" + c
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	single := make([]bool, len(keys))
	errs := make([]error, len(keys))
	e.forEach(len(keys), func(i int) {
		ns, name, _ := strings.Cut(keys[i], "/")
		start := e.clock.Now()
		pvc, err := e.client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		e.metrics.observe(a, e.clock.Since(start))
		switch {
		case apierrors.IsNotFound(err):
			single[i] = true
		case err != nil:
			errs[i] = err
		default:
			single[i] = singleNode(pvc.Spec.AccessModes) || singleNode(pvc.Status.AccessModes)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, &APIError{Action: a, Node: node, Err: err}
	}
	out := make(map[string]bool, len(keys))
	for i, k := range keys {
		out[k] = single[i]
	}
	return out, nil
}

func singleNode(modes []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range modes {
		if m == corev1.ReadWriteOnce || m == corev1.ReadWriteOncePod {
			return true
		}
	}
	return false
}

// podListRecorder is the client given to the drain helper. It keeps the pods
// that the helper's List returned, so that the pods drain filters out can be
// reported (as skipped) from the same snapshot, without a second List.
type podListRecorder struct {
	kubernetes.Interface
	mu   sync.Mutex
	pods []corev1.Pod
}

func (r *podListRecorder) CoreV1() typedcorev1.CoreV1Interface {
	return recordingCoreV1{CoreV1Interface: r.Interface.CoreV1(), r: r}
}

func (r *podListRecorder) items() []corev1.Pod {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]corev1.Pod(nil), r.pods...)
}

type recordingCoreV1 struct {
	typedcorev1.CoreV1Interface
	r *podListRecorder
}

func (c recordingCoreV1) Pods(ns string) typedcorev1.PodInterface {
	return recordingPods{PodInterface: c.CoreV1Interface.Pods(ns), r: c.r}
}

type recordingPods struct {
	typedcorev1.PodInterface
	r *podListRecorder
}

func (p recordingPods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	l, err := p.PodInterface.List(ctx, opts)
	if err == nil {
		p.r.mu.Lock()
		p.r.pods = append(p.r.pods, l.Items...)
		p.r.mu.Unlock()
	}
	return l, err
}

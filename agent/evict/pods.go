package evict

import (
	"context"
	"errors"
	"sort"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// PodRef names one pod object. The UID tells it apart from a later pod with
// the same name: a StatefulSet recreates its pods under the same names.
type PodRef struct {
	Namespace string
	Name      string
	UID       types.UID
}

func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

func refOf(p *corev1.Pod) PodRef {
	return PodRef{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
}

// PodOutcome is what an action did with one pod.
type PodOutcome string

// Pod outcomes. The first five are the values of the outcome label of
// haagent_evict_pod_evictions_total.
const (
	// PodEvicted: the Eviction API accepted the eviction (in a dry run: would
	// accept it).
	PodEvicted PodOutcome = "evicted"
	// PodGone: the pod no longer exists (404), or, for ForceDeletePods, it
	// is no longer on the node or a new pod has taken its name. A success.
	PodGone PodOutcome = "gone"
	// PodPDBBlocked: the eviction was refused with 429, normally by a
	// PodDisruptionBudget. Err is a *PDBBlockedError. Retry later with
	// backoff; never delete the pod instead.
	PodPDBBlocked PodOutcome = "pdb_blocked"
	// PodFailed: another error; Err is an *APIError (retry with backoff) or
	// ErrNoUID.
	PodFailed PodOutcome = "failed"
	// PodSkipped: left alone on purpose; Detail says why (SkipDaemonSet,
	// SkipMirror, SkipFinished, SkipTerminating, SkipDrainFilter).
	PodSkipped PodOutcome = "skipped"
	// PodFencedOnly: a StatefulSet pod or a pod with a ReadWriteOnce or
	// ReadWriteOncePod claim (Detail FencedStatefulSet or FencedRWOVolume).
	// It is not evicted; once the node is fenced, ApplyOutOfService and
	// ForceDeletePods remove it.
	PodFencedOnly PodOutcome = "fenced_only"
	// PodDeferred: over Config.MaxPodsPerNode; a later EvictPods call evicts
	// it.
	PodDeferred PodOutcome = "deferred"
	// PodDeleted: ForceDeletePods deleted the pod (in a dry run: would).
	PodDeleted PodOutcome = "deleted"
)

// Details of skipped and fenced-only pods.
const (
	SkipDaemonSet     = "daemonset"
	SkipMirror        = "mirror"
	SkipFinished      = "finished"
	SkipTerminating   = "terminating"
	SkipDrainFilter   = "drain_filter"
	FencedStatefulSet = "statefulset"
	FencedRWOVolume   = "rwo_volume"
	DetailRequested   = "requested"
)

// PodResult is the outcome for one pod.
type PodResult struct {
	Pod     PodRef
	Outcome PodOutcome
	// Detail qualifies the outcome: why a pod was skipped or fenced-only,
	// or, for ForceDeletePods, "requested" or "terminating".
	Detail string
	// Err is set for PodPDBBlocked and PodFailed.
	Err error
}

// PodsResult is the outcome of EvictPods or ForceDeletePods for every pod
// of the node, sorted by namespace and name.
type PodsResult struct {
	Node   string
	DryRun bool
	Pods   []PodResult
}

// Count returns how many pods had outcome o.
func (r PodsResult) Count(o PodOutcome) int {
	n := 0
	for _, p := range r.Pods {
		if p.Outcome == o {
			n++
		}
	}
	return n
}

// With returns the pods that had outcome o.
func (r PodsResult) With(o PodOutcome) []PodRef {
	var out []PodRef
	for _, p := range r.Pods {
		if p.Outcome == o {
			out = append(out, p.Pod)
		}
	}
	return out
}

// FencedOnly returns the pods to pass to ForceDeletePods once the node is
// fenced.
func (r PodsResult) FencedOnly() []PodRef { return r.With(PodFencedOnly) }

// Done reports whether nothing is left for a later EvictPods call: no pod
// was blocked, failed or deferred.
func (r PodsResult) Done() bool {
	return r.Count(PodPDBBlocked)+r.Count(PodFailed)+r.Count(PodDeferred) == 0
}

// Err joins the errors of the blocked and failed pods; nil when there are
// none. errors.As finds the *PDBBlockedError and *APIError values in it.
func (r PodsResult) Err() error {
	var errs []error
	for _, p := range r.Pods {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errors.Join(errs...)
}

// NotReadyResult counts what MarkPodsNotReady did with the pods of a node.
type NotReadyResult struct {
	Node   string
	DryRun bool
	// Marked pods had Ready or ContainersReady True and were set to False.
	Marked int
	// AlreadyNotReady pods had neither condition True.
	AlreadyNotReady int
	// Finished pods are Succeeded or Failed and were left alone.
	Finished int
	// Gone pods were deleted in between.
	Gone int
	// Failed pods could not be written; the error says why.
	Failed int
}

// MarkPodsNotReady sets the Ready and ContainersReady conditions of every
// pod bound to the node to False, reason HAAgentNodeDead, through the
// pods/status subresource, as the node lifecycle controller would ~50 s
// later. The EndpointSlice controller then takes the pods out of Service
// endpoints at once, before any eviction. Pods that are already not ready
// or have finished are skipped. The returned error, if any, joins the
// *APIError of each failed pod; the counts are valid either way.
func (e *Evictor) MarkPodsNotReady(ctx context.Context, node string) (NotReadyResult, error) {
	res, err := e.markPodsNotReady(ctx, node)
	e.finish(ActionMarkPodsNotReady, err)
	if err != nil {
		e.log.Warn("marking pods not ready failed", zap.String("node", node), zap.Error(err))
	}
	return res, err
}

func (e *Evictor) markPodsNotReady(ctx context.Context, node string) (NotReadyResult, error) {
	res := NotReadyResult{Node: node, DryRun: e.cfg.DryRun}
	n, err := e.failoverNode(ctx, ActionMarkPodsNotReady, node)
	if err != nil {
		return res, err
	}
	pods, err := e.podsOnNode(ctx, ActionMarkPodsNotReady, node)
	if err != nil {
		return res, err
	}
	var todo []*corev1.Pod
	for i := range pods {
		switch p := &pods[i]; {
		case finished(p):
			res.Finished++
		case !podReady(p):
			res.AlreadyNotReady++
		default:
			todo = append(todo, p)
		}
	}
	now := metav1.NewTime(e.clock.Now())
	msg := "haagent: the pod's node " + node + " was confirmed dead"
	outcomes := make([]markOutcome, len(todo))
	errs := make([]error, len(todo))
	e.forEach(len(todo), func(i int) {
		outcomes[i], errs[i] = e.markPodNotReady(ctx, node, todo[i], now, msg)
	})
	for i, o := range outcomes {
		switch o {
		case markWritten:
			res.Marked++
			e.log.Info("pod marked not ready", zap.String("node", node), zap.Stringer("pod", refOf(todo[i])), zap.Bool("dry_run", e.cfg.DryRun))
		case markNothing:
			res.AlreadyNotReady++
		case markGone:
			res.Gone++
		default:
			res.Failed++
			e.log.Warn("marking pod not ready failed", zap.String("node", node), zap.Stringer("pod", refOf(todo[i])), zap.Error(errs[i]))
		}
	}
	if res.Marked > 0 {
		e.event(n, corev1.EventTypeNormal, ReasonPodsNotReady, "haagent set %d pods NotReady", res.Marked)
	}
	return res, errors.Join(errs...)
}

type markOutcome int

const (
	markFailed markOutcome = iota
	markWritten
	markNothing
	markGone
)

// markPodNotReady patches one pod's status. On a conflict it reads the pod
// again; a pod that was replaced or moved in between counts as gone.
func (e *Evictor) markPodNotReady(ctx context.Context, node string, pod *corev1.Pod, now metav1.Time, msg string) (markOutcome, error) {
	outcome := markFailed
	cur := pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if cur == nil {
			start := e.clock.Now()
			p, err := e.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			e.metrics.observe(ActionMarkPodsNotReady, e.clock.Since(start))
			if err != nil {
				return err
			}
			if p.UID != pod.UID || p.Spec.NodeName != node {
				outcome = markGone
				return nil
			}
			cur = p
		}
		defer func() { cur = nil }()
		upd := cur.DeepCopy()
		if !setPodNotReady(upd, now, msg) {
			outcome = markNothing
			return nil
		}
		patch, err := diffPatch(cur, upd, corev1.Pod{}, cur.ResourceVersion)
		if err != nil {
			return err
		}
		start := e.clock.Now()
		_, err = e.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, e.patchOptions(), "status")
		e.metrics.observe(ActionMarkPodsNotReady, e.clock.Since(start))
		if err == nil {
			outcome = markWritten
		}
		return err
	})
	switch {
	case err == nil:
		return outcome, nil
	case apierrors.IsNotFound(err):
		return markGone, nil
	default:
		return markFailed, &APIError{Action: ActionMarkPodsNotReady, Node: node, Pod: refOf(pod).String(), Err: err}
	}
}

// podReady reports whether the pod's Ready or ContainersReady condition is
// True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func setPodNotReady(p *corev1.Pod, now metav1.Time, msg string) bool {
	changed := false
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status == corev1.ConditionTrue {
			c.Status, c.Reason, c.Message, c.LastTransitionTime = corev1.ConditionFalse, ConditionReasonNodeDead, msg, now
			changed = true
		}
	}
	return changed
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// ForceDeletePods deletes with grace period 0 the given pods and every pod
// of the node that is already terminating. Each delete carries the pod's UID
// as a precondition, so a new pod that has taken the name (a StatefulSet
// recreates its pods under the same names) is never deleted by mistake; a
// given pod that is no longer on the node is reported gone.
//
// CALL ONLY WHEN THE NODE IS KNOWN TO BE FENCED, after ApplyOutOfService: a
// pod deleted here may still run on the node if it is not, and its
// replacement would then be a second copy. As guards it refuses a Ready node
// (ErrNodeReady), a node whose kubelet renewed its Lease since fc.Lease was
// read or, by its own clock, after fc.Confirmed (ErrNodeRenewed) and, except
// in a dry run, a node without the out-of-service taint (ErrNotOutOfService).
func (e *Evictor) ForceDeletePods(ctx context.Context, node string, pods []PodRef, fc FenceCheck) (PodsResult, error) {
	res, err := e.forceDeletePods(ctx, node, pods, fc)
	if err == nil && res.Count(PodFailed) > 0 {
		e.finish(ActionForceDeletePods, res.Err())
	} else {
		e.finish(ActionForceDeletePods, err)
	}
	if err != nil {
		e.log.Warn("force delete failed", zap.String("node", node), zap.Error(err))
	}
	return res, err
}

func (e *Evictor) forceDeletePods(ctx context.Context, node string, want []PodRef, fc FenceCheck) (PodsResult, error) {
	res := PodsResult{Node: node, DryRun: e.cfg.DryRun}
	n, err := e.failoverNode(ctx, ActionForceDeletePods, node)
	if err != nil {
		return res, err
	}
	if err := e.fenced(ctx, ActionForceDeletePods, n, fc); err != nil {
		return res, e.apiError(ActionForceDeletePods, node, err)
	}
	if !hasTaint(n, outOfServiceTaint) {
		if !e.cfg.DryRun {
			return res, ErrNotOutOfService
		}
		e.log.Info("out-of-service taint missing, continuing in dry run", zap.String("node", node), zap.Bool("dry_run", true))
	}
	pods, err := e.podsOnNode(ctx, ActionForceDeletePods, node)
	if err != nil {
		return res, err
	}
	requested := map[types.UID]bool{}
	for _, p := range want {
		if p.UID == "" {
			res.Pods = append(res.Pods, PodResult{Pod: p, Outcome: PodFailed, Detail: DetailRequested, Err: ErrNoUID})
			continue
		}
		requested[p.UID] = true
	}
	var targets []PodResult
	onNode := map[types.UID]bool{}
	for i := range pods {
		p := &pods[i]
		onNode[p.UID] = true
		switch {
		case requested[p.UID]:
			targets = append(targets, PodResult{Pod: refOf(p), Detail: DetailRequested})
		case p.DeletionTimestamp != nil:
			targets = append(targets, PodResult{Pod: refOf(p), Detail: SkipTerminating})
		}
	}
	for _, p := range want {
		if p.UID != "" && !onNode[p.UID] {
			res.Pods = append(res.Pods, PodResult{Pod: p, Outcome: PodGone, Detail: DetailRequested})
		}
	}
	e.forEach(len(targets), func(i int) {
		targets[i].Outcome, targets[i].Err = e.forceDelete(ctx, node, targets[i].Pod)
	})
	res.Pods = append(res.Pods, targets...)
	sortResults(res.Pods)
	deleted := 0
	for _, p := range res.Pods {
		if !e.cfg.DryRun {
			e.metrics.forceDeletes.WithLabelValues(string(p.Outcome)).Inc()
		}
		switch p.Outcome {
		case PodDeleted:
			deleted++
			e.log.Info("pod force-deleted", zap.String("node", node), zap.Stringer("pod", p.Pod), zap.Bool("dry_run", e.cfg.DryRun))
		case PodGone:
			e.log.Info("pod already gone", zap.String("node", node), zap.Stringer("pod", p.Pod), zap.Bool("dry_run", e.cfg.DryRun))
		default:
			e.log.Warn("pod force delete failed", zap.String("node", node), zap.Stringer("pod", p.Pod), zap.Error(p.Err))
		}
	}
	if deleted > 0 {
		e.event(n, corev1.EventTypeWarning, ReasonForceDeleted, "haagent force-deleted %d pods of the fenced node", deleted)
	}
	return res, nil
}

func (e *Evictor) forceDelete(ctx context.Context, node string, p PodRef) (PodOutcome, error) {
	if err := ctx.Err(); err != nil {
		return PodFailed, &APIError{Action: ActionForceDeletePods, Node: node, Pod: p.String(), Err: err}
	}
	zero := int64(0)
	uid := p.UID
	opts := metav1.DeleteOptions{
		GracePeriodSeconds: &zero,
		Preconditions:      &metav1.Preconditions{UID: &uid},
		DryRun:             e.dryRun(),
	}
	start := e.clock.Now()
	err := e.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, opts)
	e.metrics.observe(ActionForceDeletePods, e.clock.Since(start))
	switch {
	case err == nil:
		return PodDeleted, nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Conflict: the UID precondition failed, so the pod we meant is
		// gone and another has its name.
		return PodGone, nil
	default:
		return PodFailed, &APIError{Action: ActionForceDeletePods, Node: node, Pod: p.String(), Err: err}
	}
}

// failoverNode reads the node for a failover action and refuses an
// opted-out one.
func (e *Evictor) failoverNode(ctx context.Context, a Action, node string) (*corev1.Node, error) {
	n, err := e.getNode(ctx, a, node)
	if err != nil {
		return nil, err
	}
	if OptedOut(n) {
		return nil, ErrOptedOut
	}
	return n, nil
}

// podsOnNode lists the pods bound to the node. The result is filtered again
// on spec.nodeName: acting on a pod of another node would be the worst bug
// this package could have.
func (e *Evictor) podsOnNode(ctx context.Context, a Action, node string) ([]corev1.Pod, error) {
	start := e.clock.Now()
	list, err := e.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	e.metrics.observe(a, e.clock.Since(start))
	if err != nil {
		return nil, &APIError{Action: a, Node: node, Err: err}
	}
	return onNode(list.Items, node), nil
}

func onNode(pods []corev1.Pod, node string) []corev1.Pod {
	out := make([]corev1.Pod, 0, len(pods))
	for _, p := range pods {
		if p.Spec.NodeName == node {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func sortResults(rs []PodResult) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Pod.Namespace != rs[j].Pod.Namespace {
			return rs[i].Pod.Namespace < rs[j].Pod.Namespace
		}
		return rs[i].Pod.Name < rs[j].Pod.Name
	})
}

// forEach calls fn(0..n-1) with at most Config.Parallelism calls at once and
// returns when all have returned.
func (e *Evictor) forEach(n int, fn func(i int)) {
	var g errgroup.Group
	g.SetLimit(e.cfg.Parallelism)
	for i := 0; i < n; i++ {
		g.Go(func() error {
			fn(i)
			return nil
		})
	}
	_ = g.Wait()
}

package cluster

// This file is over 500 lines: the watches a failover's timeline is read
// from (Nodes, pods, EndpointSlices, records) feed one timeline type.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// EventKind is what a Timeline saw happen.
type EventKind string

// The kinds of Timeline events. Subject is the node name for node events,
// namespace/name for pod events, Kind/namespace/name for owners and
// failover records.
const (
	// EventLastHeartbeat is the last renewal of a faulted node's Lease at or
	// before the fault ("last heard from"); At is the Lease's renewTime.
	EventLastHeartbeat EventKind = "last-heartbeat"
	// EventHeartbeat is the first renewal of a faulted node's Lease after
	// the fault: the node is heard from again.
	EventHeartbeat EventKind = "heartbeat-again"
	// EventCordoned and EventUncordoned: spec.unschedulable set or cleared.
	EventCordoned   EventKind = "cordoned"
	EventUncordoned EventKind = "uncordoned"
	// EventTainted and EventUntainted: a taint (Detail key:effect) added or removed.
	EventTainted   EventKind = "tainted"
	EventUntainted EventKind = "untainted"
	// EventNodeNotReady: the Ready condition left True (Detail: the new
	// status, Unknown or False). EventNodeReady: it became True again.
	EventNodeNotReady EventKind = "node-not-ready"
	EventNodeReady    EventKind = "node-ready"
	// EventNodeCondition: another condition (HAAgentReady, ...) changed
	// status; Detail is Type=Status and the reason.
	EventNodeCondition EventKind = "node-condition"
	// EventPodNotReady: a pod's Ready condition left True.
	EventPodNotReady EventKind = "pod-not-ready"
	// EventPodReady: a pod became Running and Ready.
	EventPodReady EventKind = "pod-ready"
	// EventPodDeleting: a pod got its deletionTimestamp (evicted or
	// deleted); Detail names the DisruptionTarget reason when there is one.
	EventPodDeleting EventKind = "pod-deleting"
	// EventPodDeleted: the pod is gone from the API.
	EventPodDeleted EventKind = "pod-deleted"
	// EventEndpointRemoved: the pod is no longer a ready endpoint in any
	// EndpointSlice. EventEndpointReady: it became one.
	EventEndpointRemoved EventKind = "endpoint-removed"
	EventEndpointReady   EventKind = "endpoint-ready"
	// EventReplacementReady: after the fault, a new pod of an owner that had
	// a pod on a faulted node is Running and Ready on another node.
	EventReplacementReady EventKind = "replacement-ready"
	// EventOwnerRecovered: an owner (Deployment, StatefulSet, ...) that had a
	// pod on a faulted node has its desired number of Running and Ready
	// pods again, none on a faulted node and none being deleted.
	EventOwnerRecovered EventKind = "owner-recovered"
	// EventFailoverRecord: a NodeFailover (nodefailovers.haagent.io) was
	// created or changed; Detail holds its phase when it has one. Only seen
	// when that resource exists when the Timeline starts.
	EventFailoverRecord EventKind = "failover-record"
)

// Event is one observation of a Timeline.
type Event struct {
	// At is when it was seen (for heartbeats: the Lease's renewTime).
	At time.Time
	// Since is At relative to the fault, negative before it.
	Since   time.Duration
	Kind    EventKind
	Subject string
	// Node is the node concerned: the node itself, or the pod's node.
	Node   string
	Detail string
}

// Timeline records what the control plane shows of a fault and its repair,
// with watches on Nodes, node Leases, Pods, EndpointSlices, workload owners
// and, if the resource exists, NodeFailover records. Start it before the
// fault, then call Fault at the fault's instant.
type Timeline struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	leases  informers.SharedInformerFactory
	dynamic dynamicinformer.DynamicSharedInformerFactory
	cancel  context.CancelFunc

	podLister  corelisters.PodLister
	rsLister   appslisters.ReplicaSetLister
	depLister  appslisters.DeploymentLister
	stsLister  appslisters.StatefulSetLister
	failoverOK bool

	mu        sync.Mutex
	start     time.Time
	faultAt   time.Time
	faulted   map[string]bool
	events    []Event
	renewals  map[string][]time.Time // node -> lease renewTimes, in order seen
	atFault   map[string]bool        // pod UIDs present at the fault
	affected  map[string]bool        // owner -> recovered yet
	endpoints map[string]map[string]string
	readyIn   map[string]int // pod key -> number of slices listing it ready
}

// StartTimeline starts the watches and returns once their caches are in
// sync; what exists then is the baseline, not an event. Stop ends it.
func StartTimeline(ctx context.Context, cfg *rest.Config) (*Timeline, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	tl := &Timeline{
		client:    client,
		cancel:    cancel,
		start:     time.Now(),
		faulted:   map[string]bool{},
		renewals:  map[string][]time.Time{},
		atFault:   map[string]bool{},
		affected:  map[string]bool{},
		endpoints: map[string]map[string]string{},
		readyIn:   map[string]int{},
	}
	tl.factory = informers.NewSharedInformerFactory(client, 0)
	tl.leases = informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(nodeLeaseNamespace))

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{tl.factory.Core().V1().Nodes().Informer(), cache.ResourceEventHandlerDetailedFuncs{UpdateFunc: tl.onNode}},
		{tl.leases.Coordination().V1().Leases().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, _ bool) { tl.onLease(obj) }, UpdateFunc: func(_, obj any) { tl.onLease(obj) },
		}},
		{tl.factory.Core().V1().Pods().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: tl.onPodAdd, UpdateFunc: tl.onPodUpdate, DeleteFunc: tl.onPodDelete,
		}},
		{tl.factory.Discovery().V1().EndpointSlices().Informer(), cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { tl.onSlice(obj, false, initial) },
			UpdateFunc: func(_, obj any) { tl.onSlice(obj, false, false) },
			DeleteFunc: func(obj any) { tl.onSlice(obj, true, false) },
		}},
		{tl.factory.Apps().V1().Deployments().Informer(), cache.ResourceEventHandlerDetailedFuncs{UpdateFunc: tl.onOwner}},
		{tl.factory.Apps().V1().StatefulSets().Informer(), cache.ResourceEventHandlerDetailedFuncs{UpdateFunc: tl.onOwner}},
		{tl.factory.Apps().V1().ReplicaSets().Informer(), cache.ResourceEventHandlerDetailedFuncs{UpdateFunc: tl.onOwner}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			cancel()
			return nil, err
		}
	}
	tl.podLister = tl.factory.Core().V1().Pods().Lister()
	tl.rsLister = tl.factory.Apps().V1().ReplicaSets().Lister()
	tl.depLister = tl.factory.Apps().V1().Deployments().Lister()
	tl.stsLister = tl.factory.Apps().V1().StatefulSets().Lister()

	if gvr, ok := failoverResource(client); ok {
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			cancel()
			return nil, err
		}
		tl.dynamic = dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
		if _, err := tl.dynamic.ForResource(gvr).Informer().AddEventHandler(cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { tl.onFailover(nil, obj, initial) },
			UpdateFunc: func(old, obj any) { tl.onFailover(old, obj, false) },
		}); err != nil {
			cancel()
			return nil, err
		}
		tl.failoverOK = true
		tl.dynamic.Start(runCtx.Done())
	}
	tl.factory.Start(runCtx.Done())
	tl.leases.Start(runCtx.Done())
	for typ, ok := range tl.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			tl.Stop()
			return nil, fmt.Errorf("cluster: timeline: %v cache did not sync: %w", typ, ctx.Err())
		}
	}
	for typ, ok := range tl.leases.WaitForCacheSync(ctx.Done()) {
		if !ok {
			tl.Stop()
			return nil, fmt.Errorf("cluster: timeline: %v cache did not sync: %w", typ, ctx.Err())
		}
	}
	if tl.dynamic != nil {
		for gvr, ok := range tl.dynamic.WaitForCacheSync(ctx.Done()) {
			if !ok {
				tl.Stop()
				return nil, fmt.Errorf("cluster: timeline: %v cache did not sync: %w", gvr, ctx.Err())
			}
		}
	}
	return tl, nil
}

// failoverResource finds nodefailovers.haagent.io, at its preferred version.
func failoverResource(client kubernetes.Interface) (schema.GroupVersionResource, bool) {
	groups, err := client.Discovery().ServerGroups()
	if err != nil {
		return schema.GroupVersionResource{}, false
	}
	for _, g := range groups.Groups {
		if g.Name != "haagent.io" {
			continue
		}
		gv := g.PreferredVersion.GroupVersion
		list, err := client.Discovery().ServerResourcesForGroupVersion(gv)
		if err != nil {
			return schema.GroupVersionResource{}, false
		}
		for _, r := range list.APIResources {
			if r.Name == "nodefailovers" {
				return schema.GroupVersionResource{Group: g.Name, Version: g.PreferredVersion.Version, Resource: r.Name}, true
			}
		}
	}
	return schema.GroupVersionResource{}, false
}

// Stop ends the watches. Events stay readable.
func (tl *Timeline) Stop() {
	tl.cancel()
	tl.factory.Shutdown()
	tl.leases.Shutdown()
	if tl.dynamic != nil {
		tl.dynamic.Shutdown()
	}
}

// FailoverRecords reports whether NodeFailover records are watched.
func (tl *Timeline) FailoverRecords() bool { return tl.failoverOK }

// Fault marks the instant of the fault and the nodes it hit. Event times
// are relative to it from then on; replacements and owner recovery are
// judged against the pods and owners on these nodes at that instant.
func (tl *Timeline) Fault(at time.Time, nodes ...string) {
	pods, _ := tl.podLister.List(labels.Everything())
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.faultAt = at
	for _, n := range nodes {
		tl.faulted[n] = true
	}
	for _, p := range pods {
		tl.atFault[string(p.UID)] = true
		if tl.faulted[p.Spec.NodeName] && p.DeletionTimestamp == nil {
			if owner := tl.ownerOf(p); owner != "" {
				tl.affected[owner] = false
			}
		}
	}
}

// zero is the instant event times are relative to; the caller holds mu.
func (tl *Timeline) zero() time.Time {
	if !tl.faultAt.IsZero() {
		return tl.faultAt
	}
	return tl.start
}

// record adds an event seen now; the caller holds mu.
func (tl *Timeline) record(kind EventKind, subject, node, detail string) {
	tl.events = append(tl.events, Event{At: time.Now(), Kind: kind, Subject: subject, Node: node, Detail: detail})
}

func (tl *Timeline) onNode(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Node)
	cur, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	name := cur.Name
	if !old.Spec.Unschedulable && cur.Spec.Unschedulable {
		tl.record(EventCordoned, name, name, "")
	}
	if old.Spec.Unschedulable && !cur.Spec.Unschedulable {
		tl.record(EventUncordoned, name, name, "")
	}
	oldT, curT := taintSet(old.Spec.Taints), taintSet(cur.Spec.Taints)
	for _, t := range sortedKeys(curT) {
		if !oldT[t] {
			tl.record(EventTainted, name, name, t)
		}
	}
	for _, t := range sortedKeys(oldT) {
		if !curT[t] {
			tl.record(EventUntainted, name, name, t)
		}
	}
	oldC := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, c := range old.Status.Conditions {
		oldC[c.Type] = c.Status
	}
	for _, c := range cur.Status.Conditions {
		was, had := oldC[c.Type]
		if had && was == c.Status {
			continue
		}
		switch {
		case c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue:
			tl.record(EventNodeReady, name, name, "")
		case c.Type == corev1.NodeReady:
			tl.record(EventNodeNotReady, name, name, string(c.Status))
		default:
			tl.record(EventNodeCondition, name, name, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Reason))
		}
	}
}

func taintSet(taints []corev1.Taint) map[string]bool {
	s := make(map[string]bool, len(taints))
	for _, t := range taints {
		s[t.Key+":"+string(t.Effect)] = true
	}
	return s
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (tl *Timeline) onLease(obj any) {
	l, ok := obj.(*coordinationv1.Lease)
	if !ok || l.Spec.RenewTime == nil {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	r := tl.renewals[l.Name]
	t := l.Spec.RenewTime.Time
	if len(r) == 0 || !r[len(r)-1].Equal(t) {
		tl.renewals[l.Name] = append(r, t)
	}
}

func podKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func podReadyCondition(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && podReadyCondition(p) && p.DeletionTimestamp == nil
}

func (tl *Timeline) onPodAdd(obj any, initial bool) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if initial {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if runningAndReady(p) {
		tl.podBecameReady(p)
		tl.checkOwners()
	}
}

func (tl *Timeline) onPodUpdate(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	key := podKey(cur)
	if podReadyCondition(old) && !podReadyCondition(cur) {
		tl.record(EventPodNotReady, key, cur.Spec.NodeName, "")
	}
	if old.DeletionTimestamp == nil && cur.DeletionTimestamp != nil {
		detail := ""
		for _, c := range cur.Status.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
				detail = c.Reason
			}
		}
		tl.record(EventPodDeleting, key, cur.Spec.NodeName, detail)
	}
	if !runningAndReady(old) && runningAndReady(cur) {
		tl.podBecameReady(cur)
	}
	tl.checkOwners()
}

// podBecameReady records a pod turning Running and Ready, and whether it
// replaces one lost to the fault; the caller holds mu.
func (tl *Timeline) podBecameReady(p *corev1.Pod) {
	key := podKey(p)
	tl.record(EventPodReady, key, p.Spec.NodeName, "")
	if tl.faultAt.IsZero() || tl.atFault[string(p.UID)] || tl.faulted[p.Spec.NodeName] {
		return
	}
	if owner := tl.ownerOf(p); owner != "" {
		if _, ok := tl.affected[owner]; ok {
			tl.record(EventReplacementReady, key, p.Spec.NodeName, owner)
		}
	}
}

func (tl *Timeline) onPodDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.record(EventPodDeleted, podKey(p), p.Spec.NodeName, "")
	tl.checkOwners()
}

func (tl *Timeline) onOwner(_, _ any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.checkOwners()
}

// ownerOf names a pod's workload: Deployment/ns/name through its
// ReplicaSet, or the kind and name of its controller. The caller holds mu
// (the listers need no lock of ours).
func (tl *Timeline) ownerOf(p *corev1.Pod) string {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return ""
	}
	if ref.Kind == "ReplicaSet" {
		if rs, err := tl.rsLister.ReplicaSets(p.Namespace).Get(ref.Name); err == nil {
			if dref := metav1.GetControllerOf(rs); dref != nil && dref.Kind == "Deployment" {
				return "Deployment/" + p.Namespace + "/" + dref.Name
			}
		}
	}
	return ref.Kind + "/" + p.Namespace + "/" + ref.Name
}

// desiredReplicas of an owner, false if unknown.
func (tl *Timeline) desiredReplicas(owner string) (int, bool) {
	kind, rest, _ := strings.Cut(owner, "/")
	ns, name, _ := strings.Cut(rest, "/")
	var replicas *int32
	switch kind {
	case "Deployment":
		d, err := tl.depLister.Deployments(ns).Get(name)
		if err != nil {
			return 0, false
		}
		replicas = d.Spec.Replicas
	case "StatefulSet":
		s, err := tl.stsLister.StatefulSets(ns).Get(name)
		if err != nil {
			return 0, false
		}
		replicas = s.Spec.Replicas
	case "ReplicaSet":
		r, err := tl.rsLister.ReplicaSets(ns).Get(name)
		if err != nil {
			return 0, false
		}
		replicas = r.Spec.Replicas
	default:
		return 0, false
	}
	if replicas == nil {
		return 1, true
	}
	return int(*replicas), true
}

// checkOwners records the owners that are back to their desired ready
// replicas; the caller holds mu.
func (tl *Timeline) checkOwners() {
	if tl.faultAt.IsZero() {
		return
	}
	var pending []string
	for owner, done := range tl.affected {
		if !done {
			pending = append(pending, owner)
		}
	}
	if len(pending) == 0 {
		return
	}
	pods, _ := tl.podLister.List(labels.Everything())
	ready := map[string]int{}
	for _, p := range pods {
		if runningAndReady(p) && !tl.faulted[p.Spec.NodeName] {
			ready[tl.ownerOf(p)]++
		}
	}
	slices.Sort(pending)
	for _, owner := range pending {
		want, ok := tl.desiredReplicas(owner)
		if ok && ready[owner] >= want {
			tl.affected[owner] = true
			tl.record(EventOwnerRecovered, owner, "", fmt.Sprintf("%d/%d ready", ready[owner], want))
		}
	}
}

func (tl *Timeline) onSlice(obj any, deleted, initial bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	now := map[string]string{} // pod key -> node
	if !deleted {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready == nil || !*ep.Conditions.Ready || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			node := ""
			if ep.NodeName != nil {
				node = *ep.NodeName
			}
			now[ep.TargetRef.Namespace+"/"+ep.TargetRef.Name] = node
		}
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	sliceKey := s.Namespace + "/" + s.Name
	before := tl.endpoints[sliceKey]
	if deleted {
		delete(tl.endpoints, sliceKey)
	} else {
		tl.endpoints[sliceKey] = now
	}
	for pod, node := range before {
		if _, still := now[pod]; still {
			continue
		}
		tl.readyIn[pod]--
		if tl.readyIn[pod] <= 0 {
			delete(tl.readyIn, pod)
			tl.record(EventEndpointRemoved, pod, node, s.Labels[discoveryv1.LabelServiceName])
		}
	}
	for pod, node := range now {
		if _, was := before[pod]; was {
			continue
		}
		tl.readyIn[pod]++
		if tl.readyIn[pod] == 1 && !initial {
			tl.record(EventEndpointReady, pod, node, s.Labels[discoveryv1.LabelServiceName])
		}
	}
}

func (tl *Timeline) onFailover(oldObj, newObj any, initial bool) {
	cur, ok := newObj.(*unstructured.Unstructured)
	if !ok || initial {
		return
	}
	phase, _, _ := unstructured.NestedString(cur.Object, "status", "phase")
	detail := "phase=" + phase
	switch old, _ := oldObj.(*unstructured.Unstructured); {
	case oldObj == nil && phase == "":
		detail = "created"
	case oldObj == nil:
		detail = "created, " + detail
	case old != nil:
		if oldPhase, _, _ := unstructured.NestedString(old.Object, "status", "phase"); oldPhase == phase {
			// Same phase: some other field changed.
			detail = "updated, " + detail
		}
	}
	node := cur.GetName()
	for _, path := range [][]string{{"spec", "nodeName"}, {"spec", "node"}} {
		if v, ok, _ := unstructured.NestedString(cur.Object, path...); ok && v != "" {
			node = v
			break
		}
	}
	subject := "NodeFailover/" + cur.GetName()
	if ns := cur.GetNamespace(); ns != "" {
		subject = "NodeFailover/" + ns + "/" + cur.GetName()
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.record(EventFailoverRecord, subject, node, detail)
}

// Events returns every event so far, in time order, with Since set, and the
// heartbeat events of the faulted nodes.
func (tl *Timeline) Events() []Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	zero := tl.zero()
	out := make([]Event, 0, len(tl.events)+2*len(tl.faulted))
	out = append(out, tl.events...)
	if !tl.faultAt.IsZero() {
		for _, node := range sortedKeys(tl.faulted) {
			var last, again time.Time
			for _, r := range tl.renewals[node] {
				if !r.After(tl.faultAt) {
					if r.After(last) {
						last = r
					}
				} else if again.IsZero() || r.Before(again) {
					again = r
				}
			}
			if !last.IsZero() {
				out = append(out, Event{At: last, Kind: EventLastHeartbeat, Subject: node, Node: node})
			}
			if !again.IsZero() {
				out = append(out, Event{At: again, Kind: EventHeartbeat, Subject: node, Node: node})
			}
		}
	}
	for i := range out {
		out[i].Since = out[i].At.Sub(zero)
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.At.Compare(b.At) })
	return out
}

// matches reports whether e is of kind and concerns key: its subject or its
// node is key, or key is empty.
func (e Event) matches(kind EventKind, key string) bool {
	return e.Kind == kind && (key == "" || e.Subject == key || e.Node == key)
}

// First returns the earliest event of kind whose Subject or Node is key
// (any, if key is empty). For example First(EventCordoned, "node-3"), or
// First(EventPodNotReady, "node-3") for the first pod of node-3 to turn
// NotReady.
func (tl *Timeline) First(kind EventKind, key string) (Event, bool) {
	for _, e := range tl.Events() {
		if e.matches(kind, key) {
			return e, true
		}
	}
	return Event{}, false
}

// All returns every event of kind whose Subject or Node is key (any, if
// key is empty), in time order.
func (tl *Timeline) All(kind EventKind, key string) []Event {
	var out []Event
	for _, e := range tl.Events() {
		if e.matches(kind, key) {
			out = append(out, e)
		}
	}
	return out
}

// WaitFor waits until First(kind, key) exists, or ctx ends.
func (tl *Timeline) WaitFor(ctx context.Context, kind EventKind, key string) (Event, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if e, ok := tl.First(kind, key); ok {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("cluster: timeline: no %s event for %q: %w", kind, key, ctx.Err())
		case <-t.C:
		}
	}
}

// Table prints the events as a table sorted by time, relative to the fault.
func (tl *Timeline) Table() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SINCE FAULT\tEVENT\tSUBJECT\tNODE\tDETAIL")
	for _, e := range tl.Events() {
		fmt.Fprintf(w, "%+.3fs\t%s\t%s\t%s\t%s\n", e.Since.Seconds(), e.Kind, e.Subject, e.Node, e.Detail)
	}
	w.Flush()
	return b.String()
}

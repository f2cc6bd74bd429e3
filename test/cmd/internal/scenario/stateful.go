package scenario

import (
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The stateful part of the workload: StatefulSet Stateful, one pod per node,
// and its headless Service of the same name.
const (
	Stateful = "db"
	// StatefulOwner is how a Timeline names the StatefulSet.
	StatefulOwner = "StatefulSet/" + Namespace + "/" + Stateful
)

// StartStatefulWorkload adds StatefulSet Stateful (one replica per node,
// parallel pod management) and its headless Service, and waits until every
// replica is Running and Ready, one per node. From then on Crash records the
// victim's StatefulSet pods, WaitWorkload waits for them too, and Rebalance
// spreads them again.
func (c *Cluster) StartStatefulWorkload(ctx context.Context, p *Printer) error {
	replicas := int32(len(c.Nodes))
	step := p.Begin("creating StatefulSet %s (%d replicas, one per node) and its headless Service", Stateful, replicas)
	client := c.Client()
	if _, err := client.CoreV1().Services(Namespace).Create(ctx, headlessService(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Service %s: %w", Stateful, err)
	}
	if _, err := client.AppsV1().StatefulSets(Namespace).Create(ctx, statefulSet(replicas), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create StatefulSet %s: %w", Stateful, err)
	}
	c.stateful = true
	err := Poll(ctx, 100*time.Millisecond, 2*time.Minute, fmt.Sprintf("%d %s pods ready, one per node", replicas, Stateful), func(ctx context.Context) (bool, error) {
		return c.spread(ctx, Stateful)
	})
	if err != nil {
		return err
	}
	step.Done("%d StatefulSet pods Running and Ready, one per node", replicas)
	return nil
}

// StatefulPodsOn lists the StatefulSet's pods bound to node, not being
// deleted; none when the stateful workload was not started.
func (c *Cluster) StatefulPodsOn(ctx context.Context, node string) ([]corev1.Pod, error) {
	if !c.stateful {
		return nil, nil
	}
	return c.appPodsOn(ctx, Stateful, node)
}

// Rebalance puts the workload back to one pod per node after crashes left
// some nodes with two and the returned ones with none: it deletes a pod of
// a node with more than one, and the topology spread constraint makes the
// scheduler place its successor on a node with none. It runs between
// crashes, outside any measured window, so that every crash hits a node with
// the same pods.
func (c *Cluster) Rebalance(ctx context.Context, timeout time.Duration) error {
	apps := []string{App}
	if c.stateful {
		apps = append(apps, Stateful)
	}
	for _, app := range apps {
		err := Poll(ctx, 250*time.Millisecond, timeout, fmt.Sprintf("%s pods one per node again", app), func(ctx context.Context) (bool, error) {
			if ok, err := c.spread(ctx, app); ok || err == nil {
				return ok, err
			}
			return false, c.moveOne(ctx, app)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// spread: exactly one Running and Ready pod of app per node, none being
// deleted.
func (c *Cluster) spread(ctx context.Context, app string) (bool, error) {
	list, err := c.Client().CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return false, err
	}
	count := map[string]int{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil {
			return false, nil // wait for it to go
		}
		if p.Status.Phase != corev1.PodRunning || !podReady(&p) {
			return false, nil
		}
		count[p.Spec.NodeName]++
	}
	for _, n := range c.Nodes {
		if count[n.Name()] != 1 {
			return false, fmt.Errorf("%s has %d %s pods", n.Name(), count[n.Name()], app)
		}
	}
	return true, nil
}

// moveOne deletes one pod of app from the node with the most of them, when
// some node has none.
func (c *Cluster) moveOne(ctx context.Context, app string) error {
	list, err := c.Client().CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return err
	}
	byNode := map[string][]corev1.Pod{}
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			return nil // a move is under way
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	empty := false
	for _, n := range c.Nodes {
		empty = empty || len(byNode[n.Name()]) == 0
	}
	if !empty {
		return nil
	}
	var most []corev1.Pod
	for _, n := range c.Nodes {
		if pods := byNode[n.Name()]; len(pods) > len(most) {
			most = pods
		}
	}
	if len(most) < 2 {
		return nil
	}
	slices.SortFunc(most, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	victim := most[0]
	err = c.Client().CoreV1().Pods(Namespace).Delete(ctx, victim.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(victim.UID))})
	if err != nil {
		return fmt.Errorf("move %s off %s: %w", victim.Name, victim.Spec.NodeName, err)
	}
	return nil
}

func headlessService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: Stateful},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  map[string]string{"app": Stateful},
			Ports:     []corev1.ServicePort{{Port: 5432}},
		},
	}
}

// statefulSet spreads its pods one per node like the Deployment, and
// manages them in parallel so that one pod stuck on a dead node does not
// hold back the others.
func statefulSet(replicas int32) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: Stateful},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(replicas),
			ServiceName:         Stateful,
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: map[string]string{"app": Stateful}},
			Template:            spreadPodTemplate(Stateful, 5432),
		},
	}
}

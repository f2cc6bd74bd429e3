package scenario

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The sample workload: a Deployment, a Service and a PodDisruptionBudget,
// all named App in Namespace.
const (
	App       = "web"
	Namespace = metav1.NamespaceDefault
	// Owner is how a Timeline names the Deployment.
	Owner = "Deployment/" + Namespace + "/" + App
)

// StartWorkload creates the sample workload with one replica per node and
// waits until every replica is a ready endpoint of the Service, one per node.
func (c *Cluster) StartWorkload(ctx context.Context, p *Printer) error {
	replicas := int32(len(c.Nodes))
	step := p.Begin("creating the workload: Deployment %s (%d replicas, one per node), Service %s, PodDisruptionBudget %s (maxUnavailable 1)",
		App, replicas, App, App)
	client := c.Client()
	if _, err := client.AppsV1().Deployments(Namespace).Create(ctx, deployment(replicas), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Deployment %s: %w", App, err)
	}
	if _, err := client.CoreV1().Services(Namespace).Create(ctx, service(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Service %s: %w", App, err)
	}
	if _, err := client.PolicyV1().PodDisruptionBudgets(Namespace).Create(ctx, pdb(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PodDisruptionBudget %s: %w", App, err)
	}
	err := Poll(ctx, 100*time.Millisecond, 2*time.Minute, fmt.Sprintf("%d %s pods ready endpoints, one per node", replicas, App), func(ctx context.Context) (bool, error) {
		return c.workloadWhole(ctx, true)
	})
	if err != nil {
		return err
	}
	step.Done("%d pods Running and Ready, one per node, all %d ready endpoints of Service %s", replicas, replicas, App)
	return nil
}

// WaitWorkload waits until the Deployment has all its replicas Running,
// Ready and ready endpoints, none being deleted.
func (c *Cluster) WaitWorkload(ctx context.Context, timeout time.Duration) error {
	return Poll(ctx, 100*time.Millisecond, timeout, fmt.Sprintf("%d %s pods ready endpoints", len(c.Nodes), App), func(ctx context.Context) (bool, error) {
		return c.workloadWhole(ctx, false)
	})
}

// workloadWhole: one ready pod per replica, each a ready endpoint; with
// spread, on as many nodes as there are replicas.
func (c *Cluster) workloadWhole(ctx context.Context, spread bool) (bool, error) {
	pods, err := c.ReadyPods(ctx)
	if err != nil {
		return false, err
	}
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
	}
	if len(pods) != len(c.Nodes) || (spread && len(nodes) != len(c.Nodes)) {
		return false, fmt.Errorf("%d ready pods on %d nodes", len(pods), len(nodes))
	}
	ready, err := c.readyEndpoints(ctx)
	if err != nil {
		return false, err
	}
	for _, p := range pods {
		if !ready[p.Name] {
			return false, fmt.Errorf("pod %s is not a ready endpoint yet", p.Name)
		}
	}
	return true, nil
}

// ReadyPods lists the workload's pods that are Running and Ready and not
// being deleted.
func (c *Cluster) ReadyPods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := c.Client().CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + App})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(&p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// PodsOn lists the workload's pods bound to node, not being deleted.
func (c *Cluster) PodsOn(ctx context.Context, node string) ([]corev1.Pod, error) {
	return c.appPodsOn(ctx, App, node)
}

// appPodsOn lists the pods labelled app bound to node, not being deleted.
func (c *Cluster) appPodsOn(ctx context.Context, app, node string) ([]corev1.Pod, error) {
	list, err := c.Client().CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Spec.NodeName == node && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// readyEndpoints is the names of the workload's pods behind ready
// endpoints. Endpoints are told apart by the pod they point to, not by
// address: on the hollow ground every pod has kubemark's one fake IP.
func (c *Cluster) readyEndpoints(ctx context.Context) (map[string]bool, error) {
	slices, err := c.Client().DiscoveryV1().EndpointSlices(Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + App,
	})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready && ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				ready[ep.TargetRef.Name] = true
			}
		}
	}
	return ready, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// deployment spreads its pods one per node. Tainted nodes are left out of
// the spread's count, so that a replacement for a pod of a dead (tainted)
// node may join a survivor's pod.
func deployment(replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": App}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: App},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: spreadPodTemplate(App, 8080),
		},
	}
}

// spreadPodTemplate is a pod of one pause container (never pulled: the
// kubelets are fake) labelled app=name, spread one per node.
func spreadPodTemplate(name string, port int32) corev1.PodTemplateSpec {
	labels := map[string]string{"app": name}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  name,
				Image: "registry.k8s.io/pause:3.10",
				Ports: []corev1.ContainerPort{{ContainerPort: port}},
			}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew:           1,
				TopologyKey:       corev1.LabelHostname,
				WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
				NodeTaintsPolicy:  ptr.To(corev1.NodeInclusionPolicyHonor),
			}},
		},
	}
}

func service() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: App},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": App},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

func pdb() *policyv1.PodDisruptionBudget {
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: App},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": App}},
		},
	}
}

// PodNames lists the pods' names, or says there are none.
func PodNames(pods []corev1.Pod) string {
	if len(pods) == 0 {
		return "no pod of " + App
	}
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = "pod " + p.Name
	}
	return strings.Join(names, ", ")
}

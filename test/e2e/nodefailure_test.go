package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestNodeFailure_stockController is the baseline without haagent: a node
// crashes while two others stay healthy, and the stock controllers, with
// tuned timings, notice it, take its pod out of the Service and replace it.
func TestNodeFailure_stockController(t *testing.T) {
	cp := startControlPlane(t, tuned)
	nodes := startNodes(t, cp, 3, tuned)
	client := cp.Client()
	ctx := context.Background()

	// Untainted too: the spread constraint leaves tainted nodes out, so a
	// pod scheduled while a node still had a start-up taint would double up.
	d := eventually(t, time.Minute, "all nodes Ready and untainted", func(ctx context.Context) (bool, error) {
		for _, k := range nodes {
			node, err := client.CoreV1().Nodes().Get(ctx, k.NodeName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if s := nodeReadyStatus(node); s != corev1.ConditionTrue || len(node.Spec.Taints) > 0 {
				return false, fmt.Errorf("node %s: Ready=%s, taints %v", node.Name, s, node.Spec.Taints)
			}
		}
		return true, nil
	})
	t.Logf("3 nodes Ready after %s", d)

	const ns, app = metav1.NamespaceDefault, "web"
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, webDeployment(app, 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).Create(ctx, webService(app), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	podOn := map[string]*corev1.Pod{} // node name -> its pod
	d = eventually(t, 2*time.Minute, "3 pods Running and Ready, one per node", func(ctx context.Context) (bool, error) {
		pods, err := readyPods(ctx, client, ns, app)
		if err != nil {
			return false, err
		}
		clear(podOn)
		for _, p := range pods {
			podOn[p.Spec.NodeName] = p
		}
		if len(pods) != 3 || len(podOn) != 3 {
			return false, fmt.Errorf("%d ready pods on %d nodes: %s", len(pods), len(podOn), describePods(ctx, client, ns, app))
		}
		return true, nil
	})
	t.Logf("pods Running and Ready after %s", d)

	want := map[string]bool{}
	for _, p := range podOn {
		want[p.Status.PodIP] = true
	}
	d = eventually(t, time.Minute, "3 ready endpoints in the EndpointSlices", func(ctx context.Context) (bool, error) {
		ready, err := readyEndpointIPs(ctx, client, ns, app)
		if err != nil || len(ready) != len(want) {
			return false, err
		}
		for ip := range want {
			if !ready[ip] {
				return false, nil
			}
		}
		return true, nil
	})
	t.Logf("endpoints ready after %s", d)

	// A live kubelet finishes a deletion at once: the pod is gone, not left
	// Terminating, and its replacement takes the free place.
	deleted := podOn[nodes[2].NodeName()]
	if err := client.CoreV1().Pods(ns).Delete(ctx, deleted.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d = eventually(t, time.Minute, "deleted pod finalized and replaced", func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Pods(ns).Get(ctx, deleted.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("pod %s still there (get: %v)", deleted.Name, err)
		}
		pods, err := readyPods(ctx, client, ns, app)
		if err != nil {
			return false, err
		}
		clear(podOn)
		for _, p := range pods {
			podOn[p.Spec.NodeName] = p
		}
		if len(pods) != 3 || len(podOn) != 3 {
			return false, fmt.Errorf("%d ready pods on %d nodes: %s", len(pods), len(podOn), describePods(ctx, client, ns, app))
		}
		return true, nil
	})
	t.Logf("pod deleted and replaced after %s", d)

	// The kubelet port can close while the node lives on: a probe of it then
	// fails, and nothing else changes.
	listenerOff := nodes[1]
	if err := dial(listenerOff.KubeletAddr()); err != nil {
		t.Fatalf("kubelet port of %s: %v", listenerOff.NodeName(), err)
	}
	listenerOff.StopListener()
	if err := dial(listenerOff.KubeletAddr()); err == nil {
		t.Fatalf("kubelet port of %s still accepts connections after StopListener", listenerOff.NodeName())
	}

	victim := nodes[0]
	victimIP := podOn[victim.NodeName()].Status.PodIP
	crashed := time.Now()
	victim.Stop()

	eventually(t, 90*time.Second, "crashed node Ready=Unknown", func(ctx context.Context) (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, victim.NodeName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReadyStatus(node) == corev1.ConditionUnknown, nil
	})
	t.Logf("node %s Ready=Unknown %s after the crash", victim.NodeName(), time.Since(crashed).Round(100*time.Millisecond))

	for _, k := range nodes[1:] {
		node, err := client.CoreV1().Nodes().Get(ctx, k.NodeName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s := nodeReadyStatus(node); s != corev1.ConditionTrue {
			t.Errorf("healthy node %s is Ready=%s, want True", k.NodeName(), s)
		}
	}

	if err := listenerOff.StartListener(); err != nil {
		t.Fatal(err)
	}
	if err := dial(listenerOff.KubeletAddr()); err != nil {
		t.Errorf("kubelet port of %s after StartListener: %v", listenerOff.NodeName(), err)
	}

	eventually(t, time.Minute, "crashed node's pod out of the ready endpoints", func(ctx context.Context) (bool, error) {
		ready, err := readyEndpointIPs(ctx, client, ns, app)
		return err == nil && !ready[victimIP], err
	})
	t.Logf("pod %s not a ready endpoint %s after the crash", victimIP, time.Since(crashed).Round(100*time.Millisecond))

	eventually(t, 2*time.Minute, "3 ready replicas again on the healthy nodes", func(ctx context.Context) (bool, error) {
		pods, err := readyPods(ctx, client, ns, app)
		if err != nil {
			return false, err
		}
		for _, p := range pods {
			if p.Spec.NodeName == victim.NodeName() {
				return false, nil
			}
		}
		if len(pods) != 3 {
			return false, fmt.Errorf("%d ready pods: %s", len(pods), describePods(ctx, client, ns, app))
		}
		return true, nil
	})
	t.Logf("3 ready replicas on healthy nodes %s after the crash", time.Since(crashed).Round(100*time.Millisecond))
}

func dial(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// describePods summarises the app's pods, for failure messages.
func describePods(ctx context.Context, client kubernetes.Interface, ns, app string) string {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range list.Items {
		fmt.Fprintf(&b, "[%s node=%q phase=%s ready=%v deleting=%v]", p.Name, p.Spec.NodeName, p.Status.Phase, podReady(&p), p.DeletionTimestamp != nil)
	}
	return b.String()
}

// readyPods lists the app's pods that are Running and Ready and not being
// deleted.
func readyPods(ctx context.Context, client kubernetes.Interface, ns, app string) ([]*corev1.Pod, error) {
	list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var pods []*corev1.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning && podReady(p) {
			pods = append(pods, p)
		}
	}
	return pods, nil
}

// readyEndpointPods collects the pods (namespace/name) behind the
// Service's ready endpoints. On the hollow ground every pod has the same
// IP (kubemark's fake runtime gives each sandbox 192.168.192.168), so
// endpoints are told apart by the pod they point to.
func readyEndpointPods(ctx context.Context, client kubernetes.Interface, ns, svc string) (map[string]bool, error) {
	return readyEndpoints(ctx, client, ns, svc, func(ep discoveryv1.Endpoint) []string {
		if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
			return nil
		}
		return []string{ep.TargetRef.Namespace + "/" + ep.TargetRef.Name}
	})
}

// readyEndpointIPs collects the addresses of the Service's ready endpoints.
func readyEndpointIPs(ctx context.Context, client kubernetes.Interface, ns, svc string) (map[string]bool, error) {
	return readyEndpoints(ctx, client, ns, svc, func(ep discoveryv1.Endpoint) []string { return ep.Addresses })
}

// readyEndpoints collects keys of the Service's ready endpoints.
func readyEndpoints(ctx context.Context, client kubernetes.Interface, ns, svc string, keys func(discoveryv1.Endpoint) []string) (map[string]bool, error) {
	slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + svc,
	})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
				for _, k := range keys(ep) {
					ready[k] = true
				}
			}
		}
	}
	return ready, nil
}

// webDeployment spreads its pods one per node (tainted nodes left out of the
// count, so that a replacement can land next to a survivor's pod).
func webDeployment(app string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": app}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  app,
						Image: "registry.k8s.io/pause:3.10", // never pulled: the kubelets are fake
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
						NodeTaintsPolicy:  ptr.To(corev1.NodeInclusionPolicyHonor),
					}},
				},
			},
		},
	}
}

func webService(app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
}

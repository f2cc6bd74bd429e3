package record

import (
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/fake"
	ktesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// t0 is an arbitrary instant with a sub-second part.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 250_000_000, time.UTC)

// ms returns t0 plus n milliseconds as a status timestamp.
func ms(n int) *metav1.MicroTime { return At(t0.Add(time.Duration(n) * time.Millisecond)) }

// fakeAPI is the fake dynamic client with the API server behaviour the
// Store depends on, which the plain object tracker lacks: resourceVersions
// that change on every write and are checked on update (409 Conflict), a
// create that ignores the status, and a status subresource that writes only
// the status while a plain update ignores it.
type fakeAPI struct {
	*fake.FakeDynamicClient

	mu sync.Mutex
	rv int
}

func newFakeAPI(t *testing.T, objs ...runtime.Object) *fakeAPI {
	t.Helper()
	gvr := GroupVersionResource()
	client := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: ListKind}, objs...)
	api := &fakeAPI{FakeDynamicClient: client, rv: 100}
	tracker := client.Tracker()

	client.PrependReactor("create", Resource, func(a ktesting.Action) (bool, runtime.Object, error) {
		obj := a.(ktesting.CreateAction).GetObject().(*unstructured.Unstructured).DeepCopy()
		unstructured.RemoveNestedField(obj.Object, "status")
		obj.SetResourceVersion(api.nextRV())
		obj.SetUID(types.UID("uid-" + obj.GetName()))
		obj.SetGeneration(1)
		obj.SetCreationTimestamp(metav1.NewTime(t0.Truncate(time.Second)))
		if err := tracker.Create(gvr, obj, ""); err != nil {
			return true, nil, err
		}
		return true, obj.DeepCopy(), nil
	})
	client.PrependReactor("update", Resource, func(a ktesting.Action) (bool, runtime.Object, error) {
		obj, err := api.update(a.(ktesting.UpdateAction))
		return true, obj, err
	})
	return api
}

// update applies an update as the API server would.
func (api *fakeAPI) update(ua ktesting.UpdateAction) (runtime.Object, error) {
	gvr := GroupVersionResource()
	tracker := api.Tracker()
	obj := ua.GetObject().(*unstructured.Unstructured)
	cur, err := tracker.Get(gvr, "", obj.GetName())
	if err != nil {
		return nil, err
	}
	stored := cur.(*unstructured.Unstructured)
	if obj.GetResourceVersion() == "" {
		return nil, apierrors.NewInvalid(GroupVersionKind().GroupKind(), obj.GetName(), nil)
	}
	if obj.GetResourceVersion() != stored.GetResourceVersion() {
		return nil, apierrors.NewConflict(gvr.GroupResource(), obj.GetName(), errStale)
	}
	// The status subresource writes only the status; the main resource
	// everything but.
	next, statusFrom := obj.DeepCopy(), stored
	if ua.GetSubresource() == "status" {
		next, statusFrom = stored.DeepCopy(), obj
	}
	if st, ok := statusFrom.Object["status"]; ok {
		next.Object["status"] = runtime.DeepCopyJSONValue(st)
	} else {
		delete(next.Object, "status")
	}
	next.SetResourceVersion(api.nextRV())
	if err := tracker.Update(gvr, next, ""); err != nil {
		return nil, err
	}
	return next.DeepCopy(), nil
}

var errStale = staleError{}

type staleError struct{}

func (staleError) Error() string { return "the object has been modified" }

func (api *fakeAPI) nextRV() string {
	api.mu.Lock()
	defer api.mu.Unlock()
	api.rv++
	return strconv.Itoa(api.rv)
}

// stored returns the record as the fake API holds it.
func (api *fakeAPI) stored(t *testing.T, name string) *NodeFailover {
	t.Helper()
	obj, err := api.Tracker().Get(GroupVersionResource(), "", name)
	if err != nil {
		t.Fatalf("tracker get %s: %v", name, err)
	}
	f, err := decode(obj.(*unstructured.Unstructured))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// failNext makes the next n requests with the verb (and subresource, ""
// for the main resource) fail with err, before the server-like reactors
// see them. It returns a function that reports how many were failed.
func (api *fakeAPI) failNext(verb, subresource string, n int, err error) func() int {
	var mu sync.Mutex
	failed := 0
	api.PrependReactor(verb, Resource, func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != subresource {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if failed >= n {
			return false, nil, nil
		}
		failed++
		return true, nil, err
	})
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return failed
	}
}

// countActions counts the requests with the verb and subresource.
func (api *fakeAPI) countActions(verb, subresource string) int {
	n := 0
	for _, a := range api.Actions() {
		if a.GetVerb() == verb && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

// newTestStore returns a Store over api with a fake clock at t0 and
// backoff 1s doubling up to 8s.
func newTestStore(t *testing.T, api *fakeAPI) (*Store, *clocktesting.FakePassiveClock) {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(t0)
	cfg := DefaultConfig()
	cfg.InitialBackoff = time.Second
	cfg.MaxBackoff = 8 * time.Second
	s, err := NewStore(cfg, Deps{Client: api, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// confirmed returns a new record of node confirmed dead 1.5 s after it was
// last heard from.
func confirmed(t *testing.T, node string) *NodeFailover {
	t.Helper()
	f, err := NewNodeFailover(node, "quorum voted dead", false, t0.Add(1500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Status.Advance(PhaseConfirmed); err != nil {
		t.Fatal(err)
	}
	f.Status.LastHeard, f.Status.Suspected, f.Status.Confirmed = ms(0), ms(600), ms(1500)
	f.Status.Votes = []Vote{
		{Voter: "node-b", Opinion: OpinionDead, At: *ms(1400)},
		{Voter: "node-c", Opinion: OpinionDead, At: *ms(1500)},
	}
	return f
}

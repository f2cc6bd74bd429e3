package record

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// TestStore_DropPending: writes queued by a coordinator that lost the Lease
// are forgotten, counted, and never reach the API afterwards.
func TestStore_DropPending(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, clk := newTestStore(t, api)
	if n := s.DropPending(); n != 0 {
		t.Fatalf("DropPending with nothing queued = %d", n)
	}
	done := confirmed(t, "node-a")
	if err := s.Create(ctx, done); err != nil {
		t.Fatal(err)
	}
	down := apierrors.NewServiceUnavailable("etcd leader changed")
	api.failNext("create", "", 1, down)
	api.failNext("update", "status", 1, down)
	queued := confirmed(t, "node-b")
	if err := s.Create(ctx, queued); !errors.Is(err, ErrPending) {
		t.Fatalf("Create with the API down = %v, want ErrPending", err)
	}
	if !s.PendingCreate(queued.Name) || s.PendingCreate(done.Name) {
		t.Errorf("PendingCreate(%s, %s) = %v, %v; want true, false", queued.Name, done.Name, s.PendingCreate(queued.Name), s.PendingCreate(done.Name))
	}
	_ = done.Status.Advance(PhaseCordoned)
	if err := s.UpdateStatus(ctx, done); !errors.Is(err, ErrPending) {
		t.Fatalf("UpdateStatus with the API down = %v, want ErrPending", err)
	}

	if n := s.DropPending(); n != 2 || s.Pending() != 0 || s.PendingCreate(queued.Name) {
		t.Fatalf("DropPending = %d, %d still queued; want 2 dropped, none left", n, s.Pending())
	}
	if got := testutil.ToFloat64(s.metrics.pendingDropped); got != 2 {
		t.Errorf("haagent_record_pending_dropped_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.metrics.pending); got != 0 {
		t.Errorf("haagent_record_pending_writes = %v, want 0", got)
	}
	writes := api.countActions("create", "") + api.countActions("update", "status")
	clk.SetTime(t0.Add(time.Hour))
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := api.countActions("create", "") + api.countActions("update", "status"); got != writes {
		t.Errorf("%d writes after the drop, want none", got-writes)
	}
	all, err := s.ListAll(ctx)
	if err != nil || len(all) != 1 || all[0].Name != done.Name || all[0].Status.Phase != PhaseConfirmed {
		t.Errorf("records = %v, %v; want only %s, as the API holds it (Confirmed)", names(all), err, done.Name)
	}
}

// TestStore_ActiveFor finds a node's active record, queued creates
// included, and not the records of other nodes or ended ones.
func TestStore_ActiveFor(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, _ := newTestStore(t, api)
	if f, err := s.ActiveFor(ctx, "node-a"); f != nil || err != nil {
		t.Fatalf("ActiveFor with no records = %v, %v", f, err)
	}
	ended := confirmed(t, "node-a")
	ended.Name += "-old"
	_ = ended.Status.Advance(PhaseFailed)
	ended.SyncLabels()
	other := confirmed(t, "node-b")
	for _, f := range []*NodeFailover{ended, other} {
		if err := s.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if f, err := s.ActiveFor(ctx, "node-a"); f != nil || err != nil {
		t.Fatalf("ActiveFor with only an ended record and another node's = %v, %v", f, err)
	}

	api.failNext("create", "", 1, apierrors.NewServiceUnavailable("down"))
	queued := confirmed(t, "node-a")
	if err := s.Create(ctx, queued); !errors.Is(err, ErrPending) {
		t.Fatalf("Create = %v, want ErrPending", err)
	}
	if f, err := s.ActiveFor(ctx, "node-a"); err != nil || f == nil || f.Name != queued.Name {
		t.Fatalf("ActiveFor with a queued create = %v, %v; want %s", f, err, queued.Name)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if f, err := s.ActiveFor(ctx, "node-a"); err != nil || f == nil || f.Name != queued.Name {
		t.Fatalf("ActiveFor once created = %v, %v; want %s", f, err, queued.Name)
	}
}

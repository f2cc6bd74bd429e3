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

// TestStore_Flush_newestWriteWins: a write of a queued record is merged
// into the queued one and tried at once; when that fails too, the backoff
// after the newest failure counts, and the retry writes the merged status.
func TestStore_Flush_newestWriteWins(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, clk := newTestStore(t, api)
	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	down := apierrors.NewServiceUnavailable("apiserver restarting")
	api.failNext("update", "status", 2, down)
	_ = f.Status.Advance(PhaseCordoned)
	f.Status.Cordoned = ms(1600)
	if err := s.UpdateStatus(ctx, f); !errors.Is(err, ErrPending) {
		t.Fatalf("UpdateStatus = %v, want ErrPending", err)
	}
	_ = f.Status.Advance(PhaseTainted)
	f.Status.Tainted = ms(1700)
	if err := s.UpdateStatus(ctx, f); !errors.Is(err, ErrPending) || s.Pending() != 1 {
		t.Fatalf("UpdateStatus of the queued record = %v with %d queued, want ErrPending and 1", err, s.Pending())
	}
	// Two failures: the retry is due 2s (not 1s) after the second.
	clk.SetTime(t0.Add(time.Second))
	writes := api.countActions("update", "status")
	if err := s.Flush(ctx); err != nil || api.countActions("update", "status") != writes {
		t.Fatalf("Flush before the second backoff = %v with %d writes, want none", err, api.countActions("update", "status")-writes)
	}
	clk.SetTime(t0.Add(2 * time.Second))
	if err := s.Flush(ctx); err != nil || s.Pending() != 0 {
		t.Fatalf("Flush = %v with %d queued, want the write done", err, s.Pending())
	}
	st := api.stored(t, f.Name).Status
	if st.Phase != PhaseTainted || !st.Cordoned.Equal(ms(1600)) || !st.Tainted.Equal(ms(1700)) {
		t.Errorf("stored = phase %s cordoned %v tainted %v; want the merged newest status", st.Phase, st.Cordoned, st.Tainted)
	}

	// Queued again later, a record starts over from the first backoff.
	api.failNext("update", "status", 1, down)
	cur, err := s.Get(ctx, f.Name)
	if err != nil {
		t.Fatal(err)
	}
	_ = cur.Status.Advance(PhasePodsNotReady)
	if err := s.UpdateStatus(ctx, cur); !errors.Is(err, ErrPending) {
		t.Fatalf("UpdateStatus = %v, want ErrPending", err)
	}
	clk.SetTime(t0.Add(3 * time.Second))
	if err := s.Flush(ctx); err != nil || s.Pending() != 0 {
		t.Fatalf("Flush 1s after a new failure = %v with %d queued, want the write done", err, s.Pending())
	}
}

// TestStore_Flush_cancelled: a Flush whose context is done makes no request
// and keeps every write queued and due, for the next Flush.
func TestStore_Flush_cancelled(t *testing.T) {
	api := newFakeAPI(t)
	s, clk := newTestStore(t, api)
	api.failNext("create", "", 2, apierrors.NewServiceUnavailable("down"))
	for _, node := range []string{"node-a", "node-b"} {
		if err := s.Create(context.Background(), confirmed(t, node)); !errors.Is(err, ErrPending) {
			t.Fatalf("Create = %v, want ErrPending", err)
		}
	}
	clk.SetTime(t0.Add(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	creates := api.countActions("create", "")
	if err := s.Flush(ctx); !errors.Is(err, ErrPending) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with a cancelled context = %v, want ErrPending and context.Canceled", err)
	}
	if s.Pending() != 2 || api.countActions("create", "") != creates {
		t.Fatalf("%d queued and %d requests after a cancelled Flush, want 2 and none", s.Pending(), api.countActions("create", "")-creates)
	}
	if err := s.Flush(context.Background()); err != nil || s.Pending() != 0 {
		t.Fatalf("next Flush = %v with %d queued, want both created", err, s.Pending())
	}
}

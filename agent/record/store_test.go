package record

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ktesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "default", mutate: func(*Config) {}},
		{
			name:    "zero initial backoff",
			mutate:  func(c *Config) { c.InitialBackoff = 0 },
			wantErr: "record: InitialBackoff (0s) must be positive",
		},
		{
			name:    "max below initial",
			mutate:  func(c *Config) { c.InitialBackoff, c.MaxBackoff = 2*time.Second, time.Second },
			wantErr: "record: MaxBackoff (1s) must be at least InitialBackoff (2s)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Fatalf("Validate() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestNewStore_errors(t *testing.T) {
	if _, err := NewStore(DefaultConfig(), Deps{}); err == nil {
		t.Error("NewStore(nil client) succeeded")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewStore(DefaultConfig(), Deps{Client: newFakeAPI(t), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	_, err := NewStore(DefaultConfig(), Deps{Client: newFakeAPI(t), Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second NewStore on one registry = %v, want an already registered error", err)
	}
}

func TestStore_createGetListUpdateStatus(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, _ := newTestStore(t, api)

	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if f.UID == "" || f.ResourceVersion == "" {
		t.Fatalf("Create did not copy back the metadata: uid %q rv %q", f.UID, f.ResourceVersion)
	}
	if got := api.countActions("update", "status"); got != 1 {
		t.Errorf("Create made %d status writes, want 1 (a create drops the status)", got)
	}

	got, err := s.Get(ctx, f.Name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status.Phase != PhaseConfirmed || got.Status.TimeToDetect != "1.5s" || len(got.Status.Votes) != 2 {
		t.Errorf("Get status = %+v", got.Status)
	}
	if got.Labels[LabelNode] != "node-a" || got.Labels[LabelActive] != "true" {
		t.Errorf("labels = %v", got.Labels)
	}

	done := confirmed(t, "node-b")
	done.Name = "node-b-old"
	if err := s.Create(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := done.Status.Advance(PhaseFailed); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStatus(ctx, done); err != nil {
		t.Fatal(err)
	}
	if !done.SyncLabels() {
		t.Fatal("SyncLabels after Failed reported no change")
	}
	if err := s.Update(ctx, done); err != nil {
		t.Fatalf("Update: %v", err)
	}

	active, err := s.ListActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].Name != f.Name {
		t.Errorf("ListActive = %v, want only %s", names(active), f.Name)
	}
	all, err := s.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Errorf("ListAll = %v, want 2 records", names(all))
	}

	if err := f.Status.Advance(PhaseCordoned); err != nil {
		t.Fatal(err)
	}
	f.Status.Cordoned = ms(1620)
	if err := s.UpdateStatus(ctx, f); err != nil {
		t.Fatalf("UpdateStatus: %v", err)
	}
	stored := api.stored(t, f.Name)
	if stored.Status.Phase != PhaseCordoned || !stored.Status.Cordoned.Equal(ms(1620)) {
		t.Errorf("stored status = %+v", stored.Status)
	}
	if stored.Spec != f.Spec {
		t.Errorf("stored spec = %+v, want %+v", stored.Spec, f.Spec)
	}
}

func names(fs []NodeFailover) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

func TestStore_UpdateStatus_conflict(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, _ := newTestStore(t, api)
	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	// Another writer (a new coordinator) cordons first.
	other, err := s.Get(ctx, f.Name)
	if err != nil {
		t.Fatal(err)
	}
	other.Status.Cordoned = ms(1600)
	_ = other.Status.Advance(PhaseCordoned)
	if err := s.UpdateStatus(ctx, other); err != nil {
		t.Fatal(err)
	}

	f.Status.Tainted = ms(1700)
	_ = f.Status.Advance(PhaseTainted)
	err = s.UpdateStatus(ctx, f)
	var e *Error
	if !errors.Is(err, ErrConflict) || !apierrors.IsConflict(err) || !errors.As(err, &e) || e.Op != "update status" {
		t.Fatalf("UpdateStatus with a stale resourceVersion = %v, want an *Error matching ErrConflict", err)
	}
	if s.Pending() != 0 {
		t.Error("a conflict was queued; it must go back to the caller")
	}

	// The documented recovery: re-read, merge, write.
	cur, err := s.Get(ctx, f.Name)
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.Merge(&f.Status)
	if err := s.UpdateStatus(ctx, cur); err != nil {
		t.Fatal(err)
	}
	st := api.stored(t, f.Name).Status
	if st.Phase != PhaseTainted || !st.Cordoned.Equal(ms(1600)) || !st.Tainted.Equal(ms(1700)) {
		t.Errorf("merged status = phase %s cordoned %v tainted %v", st.Phase, st.Cordoned, st.Tainted)
	}
}

func TestStore_notFound(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, newFakeAPI(t))
	_, err := s.Get(ctx, "nope")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Get = %v, want ErrNotFound", err)
	}
	if want := "record: get nodefailover nope: not found: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Get error = %q, want prefix %q", err, want)
	}
	f := confirmed(t, "node-a")
	f.ResourceVersion = "7"
	if err := s.UpdateStatus(ctx, f); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateStatus = %v, want ErrNotFound", err)
	}
	if err := s.Update(ctx, f); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update = %v, want ErrNotFound", err)
	}
	if s.Pending() != 0 {
		t.Error("a 404 was queued")
	}
}

func TestStore_Create_alreadyExists(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t, newFakeAPI(t))
	if err := s.Create(ctx, confirmed(t, "node-a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, confirmed(t, "node-a")); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("second Create = %v, want ErrAlreadyExists", err)
	}
}

func TestRetryable(t *testing.T) {
	gr := schema.GroupResource{Group: Group, Resource: Resource}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"internal error", apierrors.NewInternalError(errors.New("etcd")), true},
		{"service unavailable", apierrors.NewServiceUnavailable("down"), true},
		{"server timeout", apierrors.NewServerTimeout(gr, "update", 1), true},
		{"gateway timeout", apierrors.NewTimeoutError("slow", 1), true},
		{"too many requests", apierrors.NewTooManyRequests("busy", 1), true},
		{"connection refused", fmt.Errorf("put: %w", refused), true},
		{"deadline", context.DeadlineExceeded, true},
		{"canceled", context.Canceled, false},
		{"conflict", apierrors.NewConflict(gr, "x", errors.New("stale")), false},
		{"not found", apierrors.NewNotFound(gr, "x"), false},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New("rbac")), false},
		{"invalid", apierrors.NewInvalid(GroupVersionKind().GroupKind(), "x", nil), false},
		{"plain", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestStore_Flush_failsThenSucceeds(t *testing.T) {
	const failures = 4
	ctx := context.Background()
	api := newFakeAPI(t)
	reg := prometheus.NewRegistry()
	clk := clocktesting.NewFakePassiveClock(t0)
	cfg := DefaultConfig()
	cfg.InitialBackoff, cfg.MaxBackoff = time.Second, 4*time.Second
	s, err := NewStore(cfg, Deps{Client: api, Clock: clk, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); err != nil {
		t.Fatal(err)
	}

	failed := api.failNext("update", "status", failures, apierrors.NewServiceUnavailable("apiserver restarting"))
	_ = f.Status.Advance(PhaseCordoned)
	f.Status.Cordoned = ms(1620)
	err = s.UpdateStatus(ctx, f)
	if !errors.Is(err, ErrPending) || !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("UpdateStatus during an outage = %v, want ErrPending wrapping the 503", err)
	}
	if got := testutil.ToFloat64(s.metrics.pending); got != 1 {
		t.Errorf("pending gauge = %v, want 1", got)
	}
	// Reads in this process already see the queued status.
	if got, err := s.Get(ctx, f.Name); err != nil || got.Status.Phase != PhaseCordoned {
		t.Errorf("Get while queued = %v, %v; want phase Cordoned", got, err)
	}

	// Attempts at 1s, then 2s, 4s, 4s (capped) after each failure; Flush
	// before a write is due makes no request.
	waits := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	now := t0
	for i, wait := range waits {
		clk.SetTime(now.Add(wait - time.Millisecond))
		before := api.countActions("update", "status")
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush before due: %v", err)
		}
		if api.countActions("update", "status") != before {
			t.Fatalf("retry %d went out before its backoff of %s", i+1, wait)
		}
		now = now.Add(wait)
		clk.SetTime(now)
		err := s.Flush(ctx)
		if i+1 < len(waits) {
			if !errors.Is(err, ErrPending) || s.Pending() != 1 {
				t.Fatalf("Flush %d = %v with %d pending, want ErrPending and 1", i+1, err, s.Pending())
			}
			continue
		}
		if err != nil || s.Pending() != 0 {
			t.Fatalf("final Flush = %v with %d pending, want success", err, s.Pending())
		}
	}
	if failed() != failures {
		t.Errorf("%d requests failed, want %d", failed(), failures)
	}
	st := api.stored(t, f.Name).Status
	if st.Phase != PhaseCordoned || !st.Cordoned.Equal(ms(1620)) {
		t.Errorf("stored after Flush = phase %s cordoned %v", st.Phase, st.Cordoned)
	}
	if got := testutil.ToFloat64(s.metrics.pending); got != 0 {
		t.Errorf("pending gauge = %v, want 0", got)
	}
	if got := testutil.ToFloat64(s.metrics.retries); got != failures {
		t.Errorf("retries = %v, want %d", got, failures)
	}

	// The caller's copy is now stale; its next write conflicts and is
	// resolved the documented way.
	f.Status.Tainted = ms(1700)
	if err := s.UpdateStatus(ctx, f); !errors.Is(err, ErrConflict) {
		t.Fatalf("UpdateStatus with the pre-flush copy = %v, want ErrConflict", err)
	}
}

func TestStore_Flush_queuedCreate(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, clk := newTestStore(t, api)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	api.failNext("create", "", 1, fmt.Errorf("post: %w", refused))

	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); !errors.Is(err, ErrPending) {
		t.Fatalf("Create with the API down = %v, want ErrPending", err)
	}
	// A new pass of the coordinator resumes from ListActive: the queued
	// record is there.
	active, err := s.ListActive(ctx)
	if err != nil || len(active) != 1 || active[0].Name != f.Name {
		t.Fatalf("ListActive with a queued create = %v, %v", names(active), err)
	}
	// The coordinator moves on; its write joins the queued one.
	_ = f.Status.Advance(PhaseCordoned)
	f.Status.Cordoned = ms(1620)
	if err := s.UpdateStatus(ctx, f); err != nil {
		t.Fatalf("UpdateStatus after the API came back = %v", err)
	}
	if s.Pending() != 0 {
		t.Fatalf("%d writes still queued", s.Pending())
	}
	if f.ResourceVersion == "" {
		t.Error("caller's record has no resourceVersion after the queued create went out")
	}
	st := api.stored(t, f.Name).Status
	if st.Phase != PhaseCordoned || !st.Confirmed.Equal(ms(1500)) || !st.Cordoned.Equal(ms(1620)) {
		t.Errorf("stored = %+v", st)
	}
	clk.SetTime(t0.Add(time.Hour))
	if err := s.Flush(ctx); err != nil {
		t.Errorf("Flush with nothing queued = %v", err)
	}
}

func TestStore_Flush_timeoutThatLanded(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, clk := newTestStore(t, api)
	f := confirmed(t, "node-a")
	if err := s.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	// The write reaches etcd but the reply is lost: the queued copy's
	// resourceVersion is stale by the time Flush retries it.
	landed := false
	api.PrependReactor("update", Resource, func(a ktesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "status" || landed {
			return false, nil, nil
		}
		landed = true
		if _, err := api.update(a.(ktesting.UpdateAction)); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewTimeoutError("reply lost", 1)
	})
	_ = f.Status.Advance(PhaseCordoned)
	f.Status.Cordoned = ms(1620)
	if err := s.UpdateStatus(ctx, f); !errors.Is(err, ErrPending) {
		t.Fatalf("UpdateStatus = %v, want ErrPending", err)
	}
	clk.SetTime(t0.Add(time.Second))
	gets := api.countActions("get", "")
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush = %v, want the conflict resolved by merging", err)
	}
	if api.countActions("get", "") != gets+1 {
		t.Error("Flush did not re-read the record after the conflict")
	}
	st := api.stored(t, f.Name).Status
	if st.Phase != PhaseCordoned || !st.Cordoned.Equal(ms(1620)) {
		t.Errorf("stored = %+v", st)
	}
}

func TestStore_Flush_drops(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantIs  error
		dropped string
	}{
		{"record deleted", apierrors.NewNotFound(schema.GroupResource{Group: Group, Resource: Resource}, "x"), ErrNotFound, dropDeleted},
		{"invalid", apierrors.NewInvalid(GroupVersionKind().GroupKind(), "x", nil), nil, dropInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			api := newFakeAPI(t)
			s, clk := newTestStore(t, api)
			f := confirmed(t, "node-a")
			if err := s.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
			// failNext prepends, so the 500 comes first and tc.err second.
			api.failNext("update", "status", 1, tc.err)
			api.failNext("update", "status", 1, apierrors.NewInternalError(errors.New("etcd leader lost")))
			if err := s.UpdateStatus(ctx, f); err == nil {
				t.Fatal("UpdateStatus succeeded")
			}
			clk.SetTime(t0.Add(time.Second))
			err := s.Flush(ctx)
			if err == nil || errors.Is(err, ErrPending) || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Fatalf("Flush = %v, want a dropped write", err)
			}
			if s.Pending() != 0 {
				t.Error("write still queued")
			}
			if got := testutil.ToFloat64(s.metrics.dropped.WithLabelValues(tc.dropped)); got != 1 {
				t.Errorf("dropped{reason=%s} = %v, want 1", tc.dropped, got)
			}
		})
	}
}

// TestStore_concurrentUse runs writes, flushes and reads at once, for the
// race detector.
func TestStore_concurrentUse(t *testing.T) {
	ctx := context.Background()
	api := newFakeAPI(t)
	s, _ := newTestStore(t, api)
	api.failNext("update", "status", 5, apierrors.NewServiceUnavailable("flaky"))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			f := confirmed(t, fmt.Sprintf("node-%d", i))
			if err := s.Create(ctx, f); err != nil && !errors.Is(err, ErrPending) {
				t.Errorf("Create: %v", err)
				return
			}
			for range 5 {
				_ = s.Flush(ctx)
				if _, err := s.ListActive(ctx); err != nil {
					t.Errorf("ListActive: %v", err)
				}
				if _, err := s.Get(ctx, f.Name); err != nil {
					t.Errorf("Get: %v", err)
				}
				_ = s.Pending()
			}
		})
	}
	wg.Wait()
}

package record

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
)

// Operation names, in errors (Error.Op) and in the op metric label.
const (
	opCreate       = "create"
	opGet          = "get"
	opList         = "list"
	opUpdate       = "update"
	opUpdateStatus = "update status"
	opFlush        = "flush"
)

// listPageSize bounds one list response; a cluster accumulates a record per
// failover, forever unless someone prunes them.
const listPageSize = 500

// Config configures a Store.
type Config struct {
	// InitialBackoff is how long a queued write waits before its first
	// retry; each further failure doubles the wait. Short, because a record
	// that is not in the API is one that a new coordinator cannot resume.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between retries of one queued write. It must
	// be at least InitialBackoff.
	MaxBackoff time.Duration
}

// Deps are what a Store needs.
type Deps struct {
	// Client serves the NodeFailover resource.
	Client dynamic.Interface
	// Clock tells when a queued write is due; nil means the real clock.
	Clock clock.PassiveClock
	// Registerer receives the haagent_record_* metrics; nil registers
	// nothing.
	Registerer prometheus.Registerer
	// Logger receives one line per queued, retried or dropped write; nil
	// logs nothing.
	Logger *zap.Logger
}

// DefaultConfig returns retries after 500ms, 1s, 2s, … up to 30s.
func DefaultConfig() Config {
	return Config{
		InitialBackoff: 500 * time.Millisecond,
		MaxBackoff:     30 * time.Second,
	}
}

// Validate checks the backoff bounds.
func (c Config) Validate() error {
	if c.InitialBackoff <= 0 {
		return fmt.Errorf("record: InitialBackoff (%s) must be positive", c.InitialBackoff)
	}
	if c.MaxBackoff < c.InitialBackoff {
		return fmt.Errorf("record: MaxBackoff (%s) must be at least InitialBackoff (%s)", c.MaxBackoff, c.InitialBackoff)
	}
	return nil
}

// Store reads and writes NodeFailover records through the dynamic client.
// It is safe for concurrent use; writes are serialised. Writes that fail
// with a retryable error are kept in memory and retried by Flush.
type Store struct {
	client  dynamic.ResourceInterface
	cfg     Config
	clock   clock.PassiveClock
	log     *zap.Logger
	metrics *storeMetrics

	mu sync.Mutex // serialises writes; guards the retry queue below
	// The retry queue (see pending.go): the newest queued write of each
	// record, and the names of those records on a client-go rate-limiting
	// workqueue, whose delaying layer (due) holds each until its backoff
	// is over.
	pending map[string]*pendingWrite
	queue   workqueue.TypedRateLimitingInterface[string]
	due     *dueQueue
}

// NewStore returns a Store for the NodeFailover resource of deps.Client.
// It makes no request.
func NewStore(cfg Config, deps Deps) (*Store, error) {
	if deps.Client == nil {
		return nil, errors.New("record: dynamic client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newStoreMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Store{
		client:  deps.Client.Resource(GroupVersionResource()),
		cfg:     cfg,
		clock:   deps.Clock,
		log:     deps.Logger,
		metrics: m,
		pending: map[string]*pendingWrite{},
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	s.queue, s.due = newRetryQueue(cfg, s.clock)
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.Named("record")
	return s, nil
}

// Create creates the record and then writes its status (the API ignores the
// status of a create). On success f carries the name, UID and
// resourceVersion the API gave it. A name in use gives ErrAlreadyExists. A
// retryable failure queues the whole record and returns an error matching
// ErrPending: Flush creates it later.
func (s *Store) Create(ctx context.Context, f *NodeFailover) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Status.Derive()
	if _, ok := s.pending[f.Name]; ok {
		return s.updateStatus(ctx, f)
	}
	err := s.create(ctx, f)
	switch {
	case err == nil:
	case retryable(err):
		s.enqueue(f, true)
		return &Error{Op: opCreate, Name: f.Name, Kind: ErrPending, Err: err}
	default:
		return wrap(opCreate, f.Name, err)
	}
	if reflect.ValueOf(f.Status).IsZero() {
		return nil
	}
	return s.updateStatus(ctx, f)
}

// Get returns the named record, with any write of it still queued in this
// Store merged in. A missing record gives ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*NodeFailover, error) {
	u, err := s.client.Get(ctx, name, metav1.GetOptions{})
	s.count(opGet, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if p, ok := s.pending[name]; ok && p.create && apierrors.IsNotFound(err) {
			return p.record.DeepCopy(), nil
		}
		return nil, wrap(opGet, name, err)
	}
	f, err := decode(u)
	if err != nil {
		return nil, &Error{Op: opGet, Name: name, Err: err}
	}
	s.overlay(f)
	return f, nil
}

// ListActive returns the records labelled active (haagent.io/active=true),
// sorted by name: the failovers a new coordinator must resume. A record
// whose phase is already final but whose label was not yet removed is
// included; finish it with SyncLabels and Update.
func (s *Store) ListActive(ctx context.Context) ([]NodeFailover, error) {
	return s.list(ctx, LabelActive+"=true", func(f *NodeFailover) bool {
		return f.Labels[LabelActive] == "true"
	})
}

// ListAll returns every record, sorted by name.
func (s *Store) ListAll(ctx context.Context) ([]NodeFailover, error) {
	return s.list(ctx, "", func(*NodeFailover) bool { return true })
}

// ActiveFor returns the active record of node (a phase that is not final),
// queued creates included, or nil when there is none: the check that keeps
// a node from getting a second failover while one runs. Should there be
// several, it returns the one confirmed first.
func (s *Store) ActiveFor(ctx context.Context, node string) (*NodeFailover, error) {
	mine := func(f *NodeFailover) bool {
		return f.Spec.Node == node && f.Labels[LabelActive] == "true"
	}
	all, err := s.list(ctx, LabelNode+"="+NodeLabelValue(node)+","+LabelActive+"=true", mine)
	if err != nil {
		return nil, err
	}
	var found *NodeFailover
	for i := range all {
		// The label value may be a shortened name that two nodes share,
		// and the active label may lag the phase: both are checked again.
		f := &all[i]
		if f.Spec.Node != node || !f.Active() {
			continue
		}
		if found == nil || timeOf(f.Status.Confirmed).Before(timeOf(found.Status.Confirmed)) {
			found = f
		}
	}
	if found == nil {
		return nil, nil
	}
	return found.DeepCopy(), nil
}

func (s *Store) list(ctx context.Context, selector string, match func(*NodeFailover) bool) ([]NodeFailover, error) {
	var out []NodeFailover
	seen := map[string]bool{}
	opts := metav1.ListOptions{LabelSelector: selector, Limit: listPageSize}
	for {
		ul, err := s.client.List(ctx, opts)
		s.count(opList, err)
		if err != nil {
			return nil, wrap(opList, "", err)
		}
		for i := range ul.Items {
			f, err := decode(&ul.Items[i])
			if err != nil {
				return nil, &Error{Op: opList, Name: ul.Items[i].GetName(), Err: err}
			}
			seen[f.Name] = true
			out = append(out, *f)
		}
		opts.Continue = ul.GetContinue()
		if opts.Continue == "" {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range out {
		s.overlay(&out[i])
	}
	for name, p := range s.pending {
		if p.create && !seen[name] && match(p.record) {
			out = append(out, *p.record.DeepCopy())
		}
	}
	slices.SortFunc(out, func(a, b NodeFailover) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Update writes the record's metadata and spec (in practice its labels, see
// SyncLabels); the status is ignored by the API. It needs the current
// resourceVersion: a stale one gives ErrConflict. On success f carries the
// new resourceVersion. Update is not queued on failure; the active label
// is repaired on the coordinator's next pass (see ListActive).
func (s *Store) Update(ctx context.Context, f *NodeFailover) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := encode(f)
	if err != nil {
		return &Error{Op: opUpdate, Name: f.Name, Err: err}
	}
	out, err := s.client.Update(ctx, u, metav1.UpdateOptions{})
	s.count(opUpdate, err)
	if err != nil {
		return wrap(opUpdate, f.Name, err)
	}
	got, err := decode(out)
	if err != nil {
		return &Error{Op: opUpdate, Name: f.Name, Err: err}
	}
	f.ObjectMeta = got.ObjectMeta
	return nil
}

// UpdateStatus derives the durations and the conditions (SetConditions,
// with the record's generation and the Store's clock) and writes the
// status through the status subresource, with optimistic concurrency on resourceVersion. On
// success f carries the new resourceVersion.
//
//   - A stale resourceVersion gives ErrConflict: Get the record, Merge this
//     status into it, and UpdateStatus that.
//   - A missing record gives ErrNotFound.
//   - A retryable failure (5xx, 429, timeout, connection refused or reset)
//     queues the status and returns an error matching ErrPending; Flush
//     retries it. The caller may go on as if it had been written.
//
// If a write of the same record is already queued, this status is merged
// into it and the merged record is written at once, conflicts resolved by
// Merge.
func (s *Store) UpdateStatus(ctx context.Context, f *NodeFailover) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Status.Derive()
	return s.updateStatus(ctx, f)
}

func (s *Store) updateStatus(ctx context.Context, f *NodeFailover) error {
	if p, ok := s.pending[f.Name]; ok {
		p.record.Status.Merge(&f.Status)
		err := s.retry(ctx, opUpdateStatus, f.Name, p)
		if err == nil {
			f.ResourceVersion = p.record.ResourceVersion
			f.Status = *p.record.Status.DeepCopy()
		}
		return err
	}
	f.Status.SetConditions(f.Generation, s.clock.Now())
	u, err := encode(f)
	if err != nil {
		return &Error{Op: opUpdateStatus, Name: f.Name, Err: err}
	}
	out, err := s.client.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	s.count(opUpdateStatus, err)
	switch {
	case err == nil:
		f.ResourceVersion = out.GetResourceVersion()
		return nil
	case retryable(err):
		s.enqueue(f, false)
		return &Error{Op: opUpdateStatus, Name: f.Name, Kind: ErrPending, Err: err}
	default:
		return wrap(opUpdateStatus, f.Name, err)
	}
}

// create sends f without its status and copies the metadata the API
// assigned back into f.
func (s *Store) create(ctx context.Context, f *NodeFailover) error {
	u, err := encode(f)
	if err != nil {
		return err
	}
	unstructured.RemoveNestedField(u.Object, "status")
	out, err := s.client.Create(ctx, u, metav1.CreateOptions{})
	s.count(opCreate, err)
	if err != nil {
		return err
	}
	got, err := decode(out)
	if err != nil {
		return err
	}
	f.ObjectMeta = got.ObjectMeta
	return nil
}

// overlay merges a queued status of f into f. Callers hold s.mu.
func (s *Store) overlay(f *NodeFailover) {
	if p, ok := s.pending[f.Name]; ok {
		f.Status.Merge(&p.record.Status)
	}
}

func (s *Store) count(op string, err error) {
	r := resultOK
	switch {
	case err == nil:
	case apierrors.IsNotFound(err):
		r = resultNotFound
	case apierrors.IsAlreadyExists(err):
		r = resultAlreadyExists
	case apierrors.IsConflict(err):
		r = resultConflict
	case retryable(err):
		r = resultRetryable
	default:
		r = resultError
	}
	s.metrics.requests.WithLabelValues(opLabel(op), r).Inc()
}

// wrap turns an API error into an *Error with the matching sentinel.
func wrap(op, name string, err error) error {
	e := &Error{Op: op, Name: name, Err: err}
	switch {
	case apierrors.IsNotFound(err):
		e.Kind = ErrNotFound
	case apierrors.IsAlreadyExists(err):
		e.Kind = ErrAlreadyExists
	case apierrors.IsConflict(err):
		e.Kind = ErrConflict
	}
	return e
}

// encode converts f to the unstructured form the dynamic client sends.
func encode(f *NodeFailover) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(f)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(Group + "/" + Version)
	u.SetKind(Kind)
	return u, nil
}

// decode converts an object from the API to a NodeFailover.
func decode(u *unstructured.Unstructured) (*NodeFailover, error) {
	f := &NodeFailover{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return f, nil
}

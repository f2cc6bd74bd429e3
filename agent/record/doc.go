// Package record keeps the record of every failover in the API, as a
// cluster-scoped NodeFailover custom resource (haagent.io/v1alpha1), and
// turns records into reports.
//
// The Go types in types.go are the one source of the API: make generate
// runs controller-gen on their +kubebuilder markers to write their DeepCopy
// methods (zz_generated.deepcopy.go) and the CustomResourceDefinition
// (charts/haagent/crds/nodefailover.yaml, which make manifests copies to
// deploy/crd-nodefailover.yaml); make test fails when either is stale.
//
// A record is the failover's state, not a log written after the fact: the
// coordinator creates it when a node is confirmed dead and updates its phase
// and timestamps as it acts, so that a new coordinator (after a Lease
// handover) lists the active records and resumes each half-done failover
// where the last one stopped. The same timestamps give the measured times to
// detect and repair (see internal/availability).
//
// # Time format
//
// Timestamps are metav1.MicroTime: RFC 3339 in UTC with exactly six
// fractional digits ("2026-03-01T12:00:03.250000Z"). metav1.Time keeps whole
// seconds only, useless for failovers that take seconds. The CRD checks the
// six digits with a pattern, so every stored record can be read back.
//
// # Lifecycle
//
// Types and helpers (NewNodeFailover, Advance, Fail, Derive,
// SetConditions, Merge, SyncLabels, ToAvailability) are pure. The Ready,
// Completed and Failed conditions are derived from the phase and the
// timestamps on every write (see conditions.go), so that kubectl wait and
// GitOps health checks can follow a failover. A Store wraps a dynamic client; NewStore makes
// no request and starts no goroutine. The coordinator, and only the
// coordinator (the Lease holder), writes:
//
//	f, _ := record.NewNodeFailover(node, reason, dryRun, now)
//	f.Status.Advance(record.PhaseConfirmed)
//	f.Status.LastHeard, f.Status.Confirmed = record.At(lastHeard), record.At(now)
//	err := store.Create(ctx, f)            // ErrPending: queued, carry on
//	...
//	f.Status.Advance(record.PhaseCordoned) // refuses to go backwards
//	f.Status.Cordoned = record.At(now)
//	err = store.UpdateStatus(ctx, f)
//	if errors.Is(err, record.ErrConflict) { // someone else wrote: re-read
//		cur, _ := store.Get(ctx, f.Name)
//		cur.Status.Merge(&f.Status)
//		err = store.UpdateStatus(ctx, cur)
//	}
//	...
//	if f.SyncLabels() { err = store.Update(ctx, f) } // when final
//
// and calls store.Flush(ctx) on every pass of its loop: writes that failed
// with a retryable error (API server down, overloaded or slow) are queued in
// memory and Flush retries them with exponential backoff (a client-go
// rate-limiting workqueue), so no record is lost to an API outage. Reads through the Store include the queued writes.
// When the coordinator loses the Lease it calls store.DropPending(): a
// queued write written late, perhaps days later, would bring back a stale
// failover. Before it creates a record it asks store.ActiveFor(ctx, node),
// so that a node never has two active records.
//
// # What it touches
//
// Only nodefailovers and nodefailovers/status in group haagent.io. It reads
// no clock of its own (Deps.Clock) and no other resources.
package record

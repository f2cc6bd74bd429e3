package record

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haagent/haagent/internal/metriclabel"
)

const (
	metricsNamespace = "haagent"
	metricsSubsystem = "record"
)

// Values of the result label of haagent_record_api_requests_total.
const (
	resultOK            = "ok"
	resultNotFound      = "not_found"
	resultAlreadyExists = "already_exists"
	resultConflict      = "conflict"
	resultRetryable     = "retryable"
	resultError         = "error"
)

// Values of the reason label of haagent_record_dropped_writes_total.
const (
	dropDeleted = "deleted"
	dropInvalid = "invalid"
)

// storeMetrics are the Store's metrics. Label values come from the fixed
// sets above and the operation names of Error.Op.
type storeMetrics struct {
	requests *prometheus.CounterVec
	pending  prometheus.Gauge
	retries  prometheus.Counter
	dropped  *prometheus.CounterVec
	// pendingDropped counts the queued writes DropPending forgot.
	pendingDropped prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) (*storeMetrics, error) {
	m := &storeMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "api_requests_total",
			Help: "API requests for failover records, by operation (create, get, list, update, update_status) and result.",
		}, []string{"op", "result"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "pending_writes",
			Help: "Failover record writes that failed with a retryable error and wait for Flush. Above 0 for long means the API server is unreachable.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "write_retries_total",
			Help: "Retries of queued failover record writes.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "dropped_writes_total",
			Help: "Queued failover record writes given up: the record was deleted, or the API server rejected the write as invalid.",
		}, []string{"reason"}),
		pendingDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "pending_dropped_total",
			Help: "Queued failover record writes forgotten when this agent lost the coordinator Lease: a stale write must not bring back a failover.",
		}),
	}
	for _, op := range []string{opCreate, opGet, opList, opUpdate, opUpdateStatus} {
		for _, r := range []string{resultOK, resultNotFound, resultAlreadyExists, resultConflict, resultRetryable, resultError} {
			m.requests.WithLabelValues(opLabel(op), r)
		}
	}
	m.dropped.WithLabelValues(dropDeleted)
	m.dropped.WithLabelValues(dropInvalid)
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.requests, m.pending, m.retries, m.dropped, m.pendingDropped}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("record: metrics already registered (one Store per registry): %w", err)
			}
			return nil, fmt.Errorf("record: register metrics: %w", err)
		}
	}
	return m, nil
}

// opLabel is an operation name of Error.Op as a label value: update_status,
// not "update status".
func opLabel(op string) string { return metriclabel.Value(op) }

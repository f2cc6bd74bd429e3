package scenario

// This file is over 500 lines: one measurement of a cluster's API cost per
// agent, from the audit log and the metrics, kept together.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/haagent/haagent/test/cluster"
)

// The agents' own API metrics (agent side of the API-cost issue). An agent
// that does not export them yet leaves the figures they give unmeasured.
const (
	agentAPIRequests      = "haagent_api_requests_total"
	agentAPIWatches       = "haagent_api_watches"
	agentAPIReceivedBytes = "haagent_api_received_bytes_total"
)

// APIWindow is what the agents cost the kube-apiserver over one window.
type APIWindow struct {
	// Label says what went on: "idle", "failover".
	Label   string    `json:"label"`
	From    time.Time `json:"from"`
	Seconds float64   `json:"seconds"`
	// Nodes and Agents count the cluster's nodes and agents.
	Nodes  int `json:"nodes"`
	Agents int `json:"agentCount"`
	// Coordinator held the coordinator Lease at the window's end ("" none).
	Coordinator string `json:"coordinator"`
	// Victim is the node crashed in the window, if any.
	Victim string `json:"victim,omitempty"`
	// PerAgent, by node name; the coordinator is among them, marked.
	PerAgent []AgentAPI `json:"perAgent"`
	// Unattributed are haagent requests that named no node and whose token
	// is unknown (none expected).
	Unattributed *cluster.ClientUsage `json:"unattributed,omitempty"`
	// Server is the kube-apiserver process and its own counters.
	Server ServerCost `json:"server"`
}

// AgentAPI is one agent's use of the API over a window.
type AgentAPI struct {
	Node        string `json:"node"`
	Coordinator bool   `json:"coordinator,omitempty"`
	// Crashed is true for the victim of the window's crash.
	Crashed bool `json:"crashed,omitempty"`
	// From the audit log: RequestsPerSecond counts every request but the
	// agent's health checks of the apiserver (/readyz, at its check's
	// period), HealthPerSecond those.
	RequestsPerSecond  float64             `json:"requestsPerSecond"`
	HealthPerSecond    float64             `json:"healthChecksPerSecond"`
	Requests           []RequestRate       `json:"requests"`
	Watches            []cluster.WatchUse  `json:"watches"`
	MaxOpenWatches     int                 `json:"maxOpenWatches"`
	MeanOpenWatches    float64             `json:"meanOpenWatches"`
	ClusterWideWatches int                 `json:"clusterWideWatches"`
	Errors             int                 `json:"errors,omitempty"`
	Usage              cluster.ClientUsage `json:"-"`
	// WireReceivedBps and WireSentBps are the bytes per second between the
	// agent and the apiserver through the node's API proxy, TLS included.
	WireReceivedBps float64 `json:"wireReceivedBytesPerSecond"`
	WireSentBps     float64 `json:"wireSentBytesPerSecond"`
	// From the agent's /metrics, nil when it does not export them.
	MetricReceivedBps *float64 `json:"metricReceivedBytesPerSecond,omitempty"`
	MetricRequestsPS  *float64 `json:"metricRequestsPerSecond,omitempty"`
	MetricWatches     *float64 `json:"metricWatches,omitempty"`
	// The process, from /proc (zero for a crashed agent).
	RSSMeanMiB  float64 `json:"rssMeanMiB"`
	RSSMaxMiB   float64 `json:"rssMaxMiB"`
	AnonMeanMiB float64 `json:"anonMeanMiB"`
	CPU         float64 `json:"cpuPerSecond"`
}

// RequestRate is a RequestCount with its rate over the window.
type RequestRate struct {
	cluster.RequestCount
	PerSecond float64 `json:"perSecond"`
}

// ServerCost is the kube-apiserver over a window.
type ServerCost struct {
	// CPU is CPU seconds per second (1 = one core); RSS from /proc.
	CPU        float64 `json:"cpuPerSecond"`
	RSSMeanMiB float64 `json:"rssMeanMiB"`
	RSSMaxMiB  float64 `json:"rssMaxMiB"`
	// AuditRequestsPS counts every client's requests in the audit log;
	// AgentRequestsPS the agents' only.
	AuditRequestsPS float64 `json:"auditRequestsPerSecond"`
	AgentRequestsPS float64 `json:"agentRequestsPerSecond"`
	// MetricRequestsPS is the increase of apiserver_request_total (every
	// client; a watch counts when it ends) per second.
	MetricRequestsPS float64 `json:"metricRequestsPerSecond"`
	// AuditWatches are the watches open at the window's end by the audit
	// log, MetricWatches by apiserver_longrunning_requests{verb="WATCH"}.
	AuditWatches  int     `json:"auditWatches"`
	MetricWatches float64 `json:"metricWatches"`
	// AgentWatches are the agents' watches open at the end (audit log).
	AgentWatches int `json:"agentWatches"`
	// ByClient is every client's requests per second by User-Agent product.
	ByClient map[string]float64 `json:"byClient"`
}

// agentStart is what is read of an agent when a window opens.
type agentStart struct {
	traffic cluster.APITraffic
	metrics cluster.Metrics
}

// MeasureAPICost measures a window of at least minWindow, sampling the
// agents' and the apiserver's /proc every interval: with during, the
// window lasts until during returns too (a crash and its failover, say).
// The cluster must run with Config.AuditLog.
func (c *Cluster) MeasureAPICost(ctx context.Context, label string, minWindow, interval time.Duration, during func(context.Context) error) (*APIWindow, error) {
	if !c.CP.AuditLogEnabled() {
		return nil, errors.New("scenario: the API-cost measurement needs the apiserver's audit log (Config.AuditLog)")
	}
	apiPID := c.CP.PID(cluster.APIServer)
	var serverSamples []CostSample
	samples := make([][]CostSample, len(c.Nodes))
	t0 := time.Now()
	sample := func() {
		now := time.Since(t0).Seconds()
		if s, err := ReadProc(apiPID); err == nil {
			s.Seconds = now
			serverSamples = append(serverSamples, s)
		}
		for i, n := range c.Nodes {
			if a := n.Agent(); a != nil && a.Running() {
				if s, err := ReadProc(a.PID()); err == nil {
					s.Seconds = now
					samples[i] = append(samples[i], s)
				}
			}
		}
	}
	scrape := func(ctx context.Context) ([]agentStart, cluster.Metrics, error) {
		out := make([]agentStart, len(c.Nodes))
		for i, n := range c.Nodes {
			out[i].traffic = n.APITraffic()
			if a := n.Agent(); a != nil && a.Running() {
				mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				out[i].metrics, _ = a.Metrics(mctx)
				cancel()
			}
		}
		m, err := c.CP.APIServerMetrics(ctx)
		return out, m, err
	}
	startAgents, startServer, err := scrape(ctx)
	if err != nil {
		return nil, err
	}
	from := time.Now()
	sample()
	var done chan error
	if during != nil {
		done = make(chan error, 1)
		go func() { done <- during(ctx) }()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	deadline := from.Add(minWindow)
	var duringErr error
	for running := done != nil; running || time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			if done != nil && running {
				<-done
			}
			return nil, context.Cause(ctx)
		case duringErr = <-done:
			running = false
			done = nil
			continue
		case <-t.C:
		}
		sample()
	}
	if duringErr != nil {
		return nil, duringErr
	}
	to := time.Now()
	sample()
	endAgents, endServer, err := scrape(ctx)
	if err != nil {
		return nil, err
	}
	coord, err := c.Coordinator(ctx)
	if err != nil {
		return nil, fmt.Errorf("coordinator Lease: %w", err)
	}
	// The apiserver writes each event as its request ends; give the last
	// ones a moment to reach the file.
	if err := Sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	attr := cluster.Attribution{ByCredential: map[string]string{}}
	for _, n := range c.Nodes {
		if id := n.AgentCredentialID(); id != "" {
			attr.ByCredential[id] = n.Name()
		}
	}
	usage, err := cluster.AnalyzeAudit(c.CP.AuditLogPath(), from, to, attr)
	if err != nil {
		return nil, err
	}
	secs := to.Sub(from).Seconds()
	w := &APIWindow{Label: label, From: from, Seconds: secs, Nodes: len(c.Nodes), Coordinator: coord}
	if u := usage.Agents[cluster.Unattributed]; u != nil {
		w.Unattributed = u
	}
	for i, n := range c.Nodes {
		if n.Agent() == nil {
			continue
		}
		w.Agents++
		a := AgentAPI{Node: n.Name(), Coordinator: n.Name() == coord}
		if u := usage.Agents[n.Name()]; u != nil {
			a.Usage = *u
			a.RequestsPerSecond = float64(u.Total-u.Health) / secs
			a.HealthPerSecond = float64(u.Health) / secs
			for _, r := range u.Requests {
				a.Requests = append(a.Requests, RequestRate{RequestCount: r, PerSecond: float64(r.Count) / secs})
			}
			a.Watches = u.Watches
			a.MaxOpenWatches, a.MeanOpenWatches = u.MaxOpenWatches, u.MeanOpenWatches
			a.ClusterWideWatches = len(u.ClusterWideWatches())
			a.Errors = u.Errors
			w.Server.AgentRequestsPS += a.RequestsPerSecond
		}
		st, en := startAgents[i], endAgents[i]
		a.WireReceivedBps = float64(en.traffic.AgentReceived-st.traffic.AgentReceived) / secs
		a.WireSentBps = float64(en.traffic.AgentSent-st.traffic.AgentSent) / secs
		if st.metrics != nil && en.metrics != nil {
			if v0, ok0 := st.metrics.Sum(agentAPIReceivedBytes); ok0 {
				if v1, ok1 := en.metrics.Sum(agentAPIReceivedBytes); ok1 {
					r := (v1 - v0) / secs
					a.MetricReceivedBps = &r
				}
			}
			if v0, ok0 := st.metrics.Sum(agentAPIRequests); ok0 {
				if v1, ok1 := en.metrics.Sum(agentAPIRequests); ok1 {
					r := (v1 - v0) / secs
					a.MetricRequestsPS = &r
				}
			}
		}
		if en.metrics != nil {
			if v, ok := en.metrics.Sum(agentAPIWatches); ok {
				a.MetricWatches = &v
			}
		}
		ac := AgentCost{Samples: samples[i]}
		summarizeCost(&ac)
		a.RSSMeanMiB, a.RSSMaxMiB, a.AnonMeanMiB, a.CPU = ac.RSSMeanMiB, ac.RSSMaxMiB, ac.AnonMeanMiB, ac.CPU
		w.PerAgent = append(w.PerAgent, a)
	}
	sc := AgentCost{Samples: serverSamples}
	summarizeCost(&sc)
	w.Server.CPU, w.Server.RSSMeanMiB, w.Server.RSSMaxMiB = sc.CPU, sc.RSSMeanMiB, sc.RSSMaxMiB
	w.Server.AuditRequestsPS = float64(usage.AllRequests) / secs
	w.Server.AuditWatches = usage.AllWatchesEnd
	if v0, ok := startServer.Sum("apiserver_request_total"); ok {
		v1, _ := endServer.Sum("apiserver_request_total")
		w.Server.MetricRequestsPS = (v1 - v0) / secs
	}
	w.Server.MetricWatches, _ = endServer.Sum("apiserver_longrunning_requests", "verb", "WATCH")
	w.Server.ByClient = map[string]float64{}
	for k, v := range usage.ByUserAgent {
		w.Server.ByClient[k] = float64(v) / secs
	}
	w.Server.AgentWatches = agentWatchesAtEnd(c.CP.AuditLogPath(), to, attr)
	return w, nil
}

// agentWatchesAtEnd counts the agents' watches open at t.
func agentWatchesAtEnd(path string, t time.Time, attr cluster.Attribution) int {
	open := map[string]bool{}
	_ = cluster.ReadAuditLog(path, func(ev *cluster.AuditEvent) {
		if ev.Verb != "watch" || ev.StageTimestamp.After(t) {
			return
		}
		if _, ok := attr.Agent(ev); !ok {
			return
		}
		switch ev.Stage {
		case "ResponseStarted":
			open[ev.AuditID] = true
		case "ResponseComplete", "Panic":
			delete(open, ev.AuditID)
		}
	})
	return len(open)
}

// MarkVictim records that victim crashed in the window.
func (w *APIWindow) MarkVictim(victim string) {
	w.Victim = victim
	for i := range w.PerAgent {
		w.PerAgent[i].Crashed = w.PerAgent[i].Node == victim
	}
}

// Fit is a least-squares line y = A + B·x.
type Fit struct {
	A float64 `json:"a"`
	B float64 `json:"b"`
	// Proportional is true for a fit through the origin (y = B·x).
	Proportional bool `json:"proportional,omitempty"`
	// Total is true for a total over N members each of which costs A + B·N:
	// y = N·(A + B·N), which is a·N when each costs the same at any size.
	Total bool `json:"total,omitempty"`
	// Flat is true when the measured sizes showed no growth beyond their
	// noise (see Flatten): then B is 0 and A the mean.
	Flat bool `json:"flat,omitempty"`
	// Inverse is true for y = A + B/x: a fixed cost shared by x members
	// (the coordinator's standbys among all agents), which shrinks per
	// member as x grows.
	Inverse bool `json:"inverse,omitempty"`
}

// FitInverse fits y = a + b/x by least squares.
func FitInverse(xs, ys []float64) Fit {
	inv := make([]float64, len(xs))
	for i := range xs {
		if xs[i] != 0 {
			inv[i] = 1 / xs[i]
		}
	}
	f := FitLine(inv, ys)
	f.Inverse = true
	return f
}

// Flatten makes f flat (B = 0, A = the mean of ys) when, over the range of
// xs, its line moves by less than tol of the mean: a slope that small is
// the noise of a few measurements, and extrapolated 50 times past them it
// would say more than they do.
func (f Fit) Flatten(xs, ys []float64, tol float64) Fit {
	if len(xs) == 0 || f.Proportional {
		return f
	}
	per := ys
	if f.Total {
		per = make([]float64, len(ys))
		for i := range ys {
			if xs[i] != 0 {
				per[i] = ys[i] / xs[i]
			}
		}
	}
	var mean float64
	for _, y := range per {
		mean += y / float64(len(per))
	}
	lo, hi := slices.Min(xs), slices.Max(xs)
	if math.Abs(f.B)*(hi-lo) <= tol*math.Abs(mean) {
		f.A, f.B, f.Flat = mean, 0, true
	}
	return f
}

// At is the fit's value at x.
func (f Fit) At(x float64) float64 {
	if f.Inverse {
		if x == 0 {
			return f.A
		}
		return f.A + f.B/x
	}
	if f.Total {
		return x * (f.A + f.B*x)
	}
	return f.A + f.B*x
}

// String is "a + b·N", "b·N" or "N·(a + b·N)", "(flat)" added to a flat fit.
func (f Fit) String() string {
	if f.Inverse {
		sign, b := "+", f.B
		if b < 0 {
			sign, b = "−", -b
		}
		return fmt.Sprintf("%.4g %s %.4g/N", f.A, sign, b)
	}
	if f.Flat {
		if f.Total {
			return fmt.Sprintf("%.4g·N (flat)", f.A)
		}
		return fmt.Sprintf("%.4g (flat)", f.A)
	}
	if f.Proportional {
		return fmt.Sprintf("%.4g·N", f.B)
	}
	if f.Total {
		g := f
		g.Total = false
		if g.B == 0 {
			return fmt.Sprintf("%.4g·N", g.A)
		}
		return "N·(" + g.String() + ")"
	}
	sign := "+"
	b := f.B
	if b < 0 {
		sign, b = "−", -b
	}
	return fmt.Sprintf("%.4g %s %.4g·N", f.A, sign, b)
}

// FitLine fits y = a + b·x by least squares; with one distinct x, b is 0.
func FitLine(xs, ys []float64) Fit {
	n := float64(len(xs))
	if n == 0 {
		return Fit{}
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return Fit{A: sy / n}
	}
	b := (n*sxy - sx*sy) / d
	return Fit{A: (sy - b*sx) / n, B: b}
}

// FitTotal fits a total over x members, y = x·(a + b·x), by fitting each
// member's share y/x as a line.
func FitTotal(xs, ys []float64) Fit {
	per := make([]float64, len(xs))
	for i := range xs {
		if xs[i] != 0 {
			per[i] = ys[i] / xs[i]
		}
	}
	f := FitLine(xs, per)
	f.Total = true
	return f
}

// FitProportional fits y = b·x by least squares.
func FitProportional(xs, ys []float64) Fit {
	var sxx, sxy float64
	for i := range xs {
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	if sxx == 0 {
		return Fit{Proportional: true}
	}
	return Fit{B: sxy / sxx, Proportional: true}
}

// Others are the agents but the coordinator and the crashed one.
func (w *APIWindow) Others() []AgentAPI {
	var out []AgentAPI
	for _, a := range w.PerAgent {
		if !a.Coordinator && !a.Crashed {
			out = append(out, a)
		}
	}
	return out
}

// CoordinatorAgent is the coordinator's figures, false if none held the Lease.
func (w *APIWindow) CoordinatorAgent() (AgentAPI, bool) {
	for _, a := range w.PerAgent {
		if a.Coordinator {
			return a, true
		}
	}
	return AgentAPI{}, false
}

// WatchList is an agent's watch targets in one line.
func (a AgentAPI) WatchList() string { return cluster.WatchList(a.Watches) }

// TopRequests is an agent's request groups in one line, the most frequent
// first, at most n of them.
func (a AgentAPI) TopRequests(n int) string {
	if len(a.Requests) == 0 {
		return "none"
	}
	rs := slices.Clone(a.Requests)
	slices.SortStableFunc(rs, func(x, y RequestRate) int { return cmp.Compare(y.Count, x.Count) })
	var parts []string
	for i, r := range rs {
		if i == n {
			parts = append(parts, fmt.Sprintf("… %d more", len(rs)-n))
			break
		}
		where := r.Resource
		if r.Namespace != "" {
			where += " in " + r.Namespace
		}
		parts = append(parts, fmt.Sprintf("%s %s %.3f/s", r.Verb, where, r.PerSecond))
	}
	return strings.Join(parts, ", ")
}

// APITable is a window's per-agent table, for a terminal or a test log.
func (w *APIWindow) APITable() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s window, %d nodes, %.0f s; coordinator %s", w.Label, w.Nodes, w.Seconds, orNone(w.Coordinator))
	if w.Victim != "" {
		fmt.Fprintf(&b, "; crashed %s", w.Victim)
	}
	b.WriteString("\n")
	var rows [][]string
	for _, a := range w.PerAgent {
		role := ""
		switch {
		case a.Coordinator:
			role = "coordinator"
		case a.Crashed:
			role = "crashed"
		}
		metricB := "not measured"
		if a.MetricReceivedBps != nil {
			metricB = fmt.Sprintf("%.0f", *a.MetricReceivedBps)
		}
		rows = append(rows, []string{a.Node, role, fmt.Sprintf("%.3f", a.RequestsPerSecond), fmt.Sprintf("%.2f", a.HealthPerSecond),
			fmt.Sprintf("%d (mean %.1f)", a.MaxOpenWatches, a.MeanOpenWatches), fmt.Sprint(a.ClusterWideWatches),
			fmt.Sprintf("%.0f", a.WireReceivedBps), metricB, fmt.Sprintf("%.1f", a.RSSMeanMiB), fmt.Sprintf("%.2f", 100*a.CPU),
			a.WatchList(), a.TopRequests(4)})
	}
	_ = WriteTable(&b, []string{"agent", "role", "req/s", "/readyz/s", "watches max", "cluster-wide", "wire B/s in", "metric B/s in", "RSS MiB", "CPU %", "watching", "requests"}, rows)
	if w.Unattributed != nil {
		fmt.Fprintf(&b, "  unattributed haagent requests: %d\n", w.Unattributed.Total)
	}
	s := w.Server
	fmt.Fprintf(&b, "  kube-apiserver: CPU %.1f %% of a core, RSS %.0f MiB (max %.0f); requests/s: %.1f in the audit log, %.1f by apiserver_request_total, %.2f of them the agents'; watches open at the end: %d in the audit log (%d the agents'), %.0f by apiserver_longrunning_requests\n",
		100*s.CPU, s.RSSMeanMiB, s.RSSMaxMiB, s.AuditRequestsPS, s.MetricRequestsPS, s.AgentRequestsPS, s.AuditWatches, s.AgentWatches, s.MetricWatches)
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

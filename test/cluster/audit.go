package cluster

// This file is over 500 lines: one reader of the apiserver's audit log, from
// its line format to the per-agent tables; split, each half would export its
// internals to the other.

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// auditPolicy logs every request at level Metadata (who, what, where, the
// response code; no bodies), once it has started answering and once it is
// done: the RequestReceived stage adds nothing the others lack.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
`

// CredentialIDKey is the user extra under which the apiserver reports the
// credential a request authenticated with; for a ServiceAccount token it
// is "JTI=<the token's jti claim>".
const CredentialIDKey = "authentication.kubernetes.io/credential-id"

// AuditEvent is the part of an audit.k8s.io/v1 Event that the API-cost
// measurement reads (see ControlPlaneConfig.AuditLog).
type AuditEvent struct {
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string              `json:"username"`
		Extra    map[string][]string `json:"extra"`
	} `json:"user"`
	SourceIPs []string `json:"sourceIPs"`
	UserAgent string   `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestReceived time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp  time.Time `json:"stageTimestamp"`
}

// Resource is the object's resource with its subresource, "nodes/status";
// for a request on no object (discovery, /readyz), the path of the URI.
func (e *AuditEvent) Resource() string {
	if e.ObjectRef == nil || e.ObjectRef.Resource == "" {
		p, _, _ := strings.Cut(e.RequestURI, "?")
		return p
	}
	r := e.ObjectRef.Resource
	if e.ObjectRef.Subresource != "" {
		r += "/" + e.ObjectRef.Subresource
	}
	return r
}

// IsHealthCheck is true for a request of the apiserver's own health:
// /readyz, /livez, /healthz and their sub-paths.
func (e *AuditEvent) IsHealthCheck() bool {
	if e.ObjectRef != nil {
		return false
	}
	p, _, _ := strings.Cut(e.RequestURI, "?")
	for _, h := range []string{"/readyz", "/livez", "/healthz"} {
		if p == h || strings.HasPrefix(p, h+"/") {
			return true
		}
	}
	return false
}

// Namespace is the object's namespace, "" if none.
func (e *AuditEvent) Namespace() string {
	if e.ObjectRef == nil {
		return ""
	}
	return e.ObjectRef.Namespace
}

// Query is the requestURI's query.
func (e *AuditEvent) Query() url.Values {
	_, q, _ := strings.Cut(e.RequestURI, "?")
	v, _ := url.ParseQuery(q)
	return v
}

// CredentialID is the user extra CredentialIDKey, "" if none.
func (e *AuditEvent) CredentialID() string {
	if v := e.User.Extra[CredentialIDKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ReadAuditLog calls fn for every event of the log at path, in the order
// written. A last line cut short (the apiserver still writing it) is left
// out.
func ReadAuditLog(path string, fn func(*AuditEvent)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return readAudit(f, fn)
}

func readAudit(r io.Reader, fn func(*AuditEvent)) error {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var ev AuditEvent
			if jerr := json.Unmarshal(line, &ev); jerr != nil {
				return fmt.Errorf("cluster: audit log: %w", jerr)
			}
			fn(&ev)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// AgentUserAgentPrefix starts the User-Agent of every haagent agent:
// "haagent/<version> node=<name>", or client-go's default
// "haagent/<version> (<os>/<arch>) kubernetes/<commit>".
const AgentUserAgentPrefix = "haagent/"

// Unattributed is the agent name of haagent requests that name no node and
// whose credential is not known.
const Unattributed = "(unattributed haagent)"

// Attribution says which agent sent a request.
type Attribution struct {
	// ByCredential maps a credential ID (CredentialIDKey's value,
	// "JTI=...") to the node whose agent holds it; see
	// Node.AgentCredentialID.
	ByCredential map[string]string
}

// Agent names the node of the agent that sent ev: the node= of its
// User-Agent, else the owner of its credential; Unattributed for another
// haagent request; "" (false) for a request of anything else.
func (a Attribution) Agent(ev *AuditEvent) (string, bool) {
	if node, ok := a.ByCredential[ev.CredentialID()]; ok && node != "" {
		if n := uaNode(ev.UserAgent); n != "" {
			return n, true
		}
		return node, true
	}
	if !strings.HasPrefix(ev.UserAgent, AgentUserAgentPrefix) {
		return "", false
	}
	if n := uaNode(ev.UserAgent); n != "" {
		return n, true
	}
	return Unattributed, true
}

// uaNode is the value of a node=<name> field of a User-Agent.
func uaNode(ua string) string {
	for f := range strings.FieldsSeq(ua) {
		if v, ok := strings.CutPrefix(f, "node="); ok {
			return strings.Trim(v, `"(),;`)
		}
	}
	return ""
}

// RequestKey groups requests.
type RequestKey struct {
	Verb     string `json:"verb"`
	Resource string `json:"resource"`
	// Namespace is "" for a cluster-scoped request or one across every
	// namespace.
	Namespace string `json:"namespace,omitempty"`
}

// RequestCount is how many requests of a key came in a window.
type RequestCount struct {
	RequestKey
	Count int `json:"count"`
}

// WatchTarget is what a watch watches.
type WatchTarget struct {
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	// FieldSelector and LabelSelector as the request gave them.
	FieldSelector string `json:"fieldSelector,omitempty"`
	LabelSelector string `json:"labelSelector,omitempty"`
}

// Name is the object a fieldSelector metadata.name=<name> picks, "" if
// the selector picks none.
func (w WatchTarget) Name() string {
	for t := range strings.SplitSeq(w.FieldSelector, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(t), "metadata.name="); ok {
			return v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(t), "metadata.name=="); ok {
			return v
		}
	}
	return ""
}

// ClusterWide is true for a watch without a namespace and without a
// metadata.name field selector: it sees every object of its resource (or
// every one its other selectors pick) in the whole cluster.
func (w WatchTarget) ClusterWide() bool { return w.Namespace == "" && w.Name() == "" }

// String is "nodes, cluster-wide", "leases in haagent, name haagent-coordinator".
func (w WatchTarget) String() string {
	var b strings.Builder
	b.WriteString(w.Resource)
	if w.Namespace != "" {
		b.WriteString(" in " + w.Namespace)
	}
	switch {
	case w.Name() != "":
		b.WriteString(", single object " + w.Name())
	case w.ClusterWide():
		b.WriteString(", cluster-wide")
	}
	if w.FieldSelector != "" && w.Name() == "" {
		b.WriteString(", fieldSelector " + w.FieldSelector)
	}
	if w.LabelSelector != "" {
		b.WriteString(", labelSelector " + w.LabelSelector)
	}
	return b.String()
}

// WatchUse is one watch target of one client over a window.
type WatchUse struct {
	WatchTarget
	// Requests is how many watch requests of this target began in the window.
	Requests int `json:"requests"`
	// MeanOpen is how many were open on average over the window; MaxOpen
	// the most at once.
	MeanOpen float64 `json:"meanOpen"`
	MaxOpen  int     `json:"maxOpen"`
}

// ClientUsage is what one client (an agent) asked of the API in a window.
type ClientUsage struct {
	Name string `json:"name"`
	// Requests counts every request that began in the window, watches
	// included, by verb, resource and namespace.
	Requests []RequestCount `json:"requests"`
	Total    int            `json:"total"`
	// Health counts the requests of Total that are health checks of the
	// apiserver itself (/readyz, /livez, /healthz): an agent's apiserver
	// check, at the period its configuration gives it.
	Health int `json:"health,omitempty"`
	// Watches lists every watch target open at some time in the window.
	Watches []WatchUse `json:"watches"`
	// MaxOpenWatches is the most watches open at once; MeanOpenWatches
	// the average over the window.
	MaxOpenWatches  int     `json:"maxOpenWatches"`
	MeanOpenWatches float64 `json:"meanOpenWatches"`
	// Errors counts the requests answered with a status of 400 or more.
	Errors int `json:"errors,omitempty"`
}

// ClusterWideWatches are the watch targets that see the whole cluster.
func (u *ClientUsage) ClusterWideWatches() []WatchUse {
	var out []WatchUse
	for _, w := range u.Watches {
		if w.ClusterWide() {
			out = append(out, w)
		}
	}
	return out
}

// AuditUsage is the API usage of a window, per agent and in all.
type AuditUsage struct {
	From, To time.Time
	// Agents by node name (and Unattributed).
	Agents map[string]*ClientUsage
	// AllRequests counts every request of every client that began in the
	// window; AllWatchesEnd the watches open at its end.
	AllRequests   int
	AllWatchesEnd int
	// ByUserAgent counts every request of the window by the User-Agent's
	// product (before the first '/'), for the API server's other clients.
	ByUserAgent map[string]int
}

// Seconds is the window's length.
func (u *AuditUsage) Seconds() float64 { return u.To.Sub(u.From).Seconds() }

// renewalOverlap is how long a watch may outlast the next one of the same
// client and target and still count as renewed by it.
const renewalOverlap = 2 * time.Second

type openWatch struct {
	agent  string
	target WatchTarget
	start  time.Time
}

// AnalyzeAudit reads the audit log at path and sums up the window [from,
// to): requests by when they were received, watches by how long they were
// open in it (from ResponseStarted to ResponseComplete; one still open at
// the end of the log is open to the window's end).
func AnalyzeAudit(path string, from, to time.Time, attr Attribution) (*AuditUsage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return analyzeAudit(f, from, to, attr)
}

func analyzeAudit(r io.Reader, from, to time.Time, attr Attribution) (*AuditUsage, error) {
	u := &AuditUsage{From: from, To: to, Agents: map[string]*ClientUsage{}, ByUserAgent: map[string]int{}}
	counts := map[string]map[RequestKey]int{}
	open := map[string]*openWatch{}
	// Intervals of every agent watch, for the means and maxima.
	type interval struct {
		agent  string
		target WatchTarget
		start  time.Time
		end    time.Time
	}
	var spans []interval
	started := map[string]bool{} // auditIDs of watches whose ResponseStarted was seen
	usage := func(agent string) *ClientUsage {
		cu := u.Agents[agent]
		if cu == nil {
			cu = &ClientUsage{Name: agent}
			u.Agents[agent] = cu
			counts[agent] = map[RequestKey]int{}
		}
		return cu
	}
	inWindow := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	count := func(ev *AuditEvent) {
		if !inWindow(ev.RequestReceived) {
			return
		}
		u.AllRequests++
		product, _, _ := strings.Cut(ev.UserAgent, "/")
		product, _, _ = strings.Cut(product, " ")
		u.ByUserAgent[product]++
		agent, ok := attr.Agent(ev)
		if !ok {
			return
		}
		cu := usage(agent)
		cu.Total++
		if ev.IsHealthCheck() {
			cu.Health++
		}
		counts[agent][RequestKey{Verb: ev.Verb, Resource: ev.Resource(), Namespace: ev.Namespace()}]++
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code >= 400 {
			cu.Errors++
		}
	}
	err := readAudit(r, func(ev *AuditEvent) {
		if ev.Verb != "watch" {
			if ev.Stage == "ResponseComplete" || ev.Stage == "Panic" {
				count(ev)
			}
			return
		}
		switch ev.Stage {
		case "ResponseStarted":
			started[ev.AuditID] = true
			count(ev)
			q := ev.Query()
			t := WatchTarget{Resource: ev.Resource(), Namespace: ev.Namespace(),
				FieldSelector: q.Get("fieldSelector"), LabelSelector: q.Get("labelSelector")}
			agent, _ := attr.Agent(ev)
			open[ev.AuditID] = &openWatch{agent: agent, target: t, start: ev.StageTimestamp}
		case "ResponseComplete", "Panic":
			if !started[ev.AuditID] {
				count(ev) // refused before it started
				return
			}
			delete(started, ev.AuditID)
			if w, ok := open[ev.AuditID]; ok {
				delete(open, ev.AuditID)
				if w.agent != "" {
					spans = append(spans, interval{w.agent, w.target, w.start, ev.StageTimestamp})
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, w := range open {
		if w.start.Before(to) {
			u.AllWatchesEnd++
		}
		if w.agent != "" {
			spans = append(spans, interval{w.agent, w.target, w.start, to})
		}
	}
	// A watch renewed by its client (a reflector's watch times out, and it
	// watches again) ends in the log a moment after its successor started:
	// the handover is one watch, not two.
	slices.SortFunc(spans, func(a, b interval) int {
		return cmp.Or(cmp.Compare(a.agent, b.agent), cmp.Compare(a.target.String(), b.target.String()), a.start.Compare(b.start))
	})
	for i := 1; i < len(spans); i++ {
		a, b := &spans[i-1], spans[i]
		if a.agent == b.agent && a.target == b.target && b.start.Before(a.end) && a.end.Sub(b.start) < renewalOverlap {
			a.end = b.start
		}
	}
	window := to.Sub(from).Seconds()
	type tkey struct {
		agent  string
		target WatchTarget
	}
	uses := map[tkey]*WatchUse{}
	type edge struct {
		at    time.Time
		delta int
	}
	edges := map[tkey][]edge{}
	agentEdges := map[string][]edge{}
	for _, s := range spans {
		start, end := maxTime(s.start, from), minTime(s.end, to)
		if !start.Before(end) {
			continue
		}
		k := tkey{s.agent, s.target}
		wu := uses[k]
		if wu == nil {
			wu = &WatchUse{WatchTarget: s.target}
			uses[k] = wu
		}
		if inWindow(s.start) {
			wu.Requests++
		}
		if window > 0 {
			wu.MeanOpen += end.Sub(start).Seconds() / window
		}
		edges[k] = append(edges[k], edge{start, 1}, edge{end, -1})
		agentEdges[s.agent] = append(agentEdges[s.agent], edge{start, 1}, edge{end, -1})
		usage(s.agent)
	}
	peak := func(es []edge) int {
		// Ends before starts at the same instant: a watch renewed at once
		// is not two.
		slices.SortFunc(es, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return cmp.Compare(a.delta, b.delta)
		})
		n, m := 0, 0
		for _, e := range es {
			n += e.delta
			m = max(m, n)
		}
		return m
	}
	for k, wu := range uses {
		wu.MaxOpen = peak(edges[k])
		cu := usage(k.agent)
		cu.Watches = append(cu.Watches, *wu)
		cu.MeanOpenWatches += wu.MeanOpen
	}
	for agent, es := range agentEdges {
		usage(agent).MaxOpenWatches = peak(es)
	}
	for agent, cu := range u.Agents {
		for k, n := range counts[agent] {
			cu.Requests = append(cu.Requests, RequestCount{RequestKey: k, Count: n})
		}
		slices.SortFunc(cu.Requests, func(a, b RequestCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Verb, b.Verb),
				cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Namespace, b.Namespace))
		})
		slices.SortFunc(cu.Watches, func(a, b WatchUse) int {
			return cmp.Or(cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Namespace, b.Namespace),
				cmp.Compare(a.FieldSelector, b.FieldSelector), cmp.Compare(a.LabelSelector, b.LabelSelector))
		})
	}
	return u, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// WatchList is watch targets in one line, "none" for none.
func WatchList(ws []WatchUse) string {
	if len(ws) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(ws))
	for _, w := range ws {
		s := w.String()
		if w.MaxOpen > 1 {
			s += fmt.Sprintf(" (×%d)", w.MaxOpen)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

package cluster

// This file is over 500 lines: the Prometheus harness: its configuration,
// the rules with scaled durations, the process and the query helpers the
// tests use.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"
)

// PrometheusJob is the job label of the agents' targets, as the chart's
// PodMonitor sets it (from the pod label app.kubernetes.io/name), so that the
// shipped rules, which select job="haagent", read them unchanged.
const PrometheusJob = "haagent"

// PrometheusConfig says how to run a Prometheus that scrapes the agents and
// evaluates alert rules.
type PrometheusConfig struct {
	// BinDir holds the prometheus binary (hack/build-prometheus.sh).
	BinDir string
	// RuleFiles are loaded as they are; see ScaleRuleDurations for a copy
	// whose `for:` durations suit a test.
	RuleFiles []string
	// ScrapeInterval and EvaluationInterval are Prometheus' global ones. The
	// shipped configuration scrapes every 30 s; a test scrapes every second
	// so that an alert follows a fault within seconds.
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	// BearerTokenFile, if set, is sent with every scrape (agents that
	// authenticate their /metrics).
	BearerTokenFile string
	// Logger receives the harness's own progress.
	Logger *zap.Logger
}

// DefaultPrometheusConfig scrapes and evaluates every second.
func DefaultPrometheusConfig(binDir string) PrometheusConfig {
	return PrometheusConfig{BinDir: binDir, ScrapeInterval: time.Second, EvaluationInterval: time.Second}
}

// Validate checks the configuration and that the binary is there.
func (c PrometheusConfig) Validate() error {
	if c.BinDir == "" {
		return errors.New("cluster: Prometheus BinDir is empty; it must name the directory of hack/build-prometheus.sh --print-dir")
	}
	if _, err := os.Stat(filepath.Join(c.BinDir, "prometheus")); err != nil {
		return fmt.Errorf("cluster: Prometheus BinDir (%s) has no prometheus: %w", c.BinDir, err)
	}
	if c.ScrapeInterval < 100*time.Millisecond || c.EvaluationInterval < 100*time.Millisecond {
		return fmt.Errorf("cluster: Prometheus ScrapeInterval (%s) and EvaluationInterval (%s) must be at least 100ms", c.ScrapeInterval, c.EvaluationInterval)
	}
	for _, f := range c.RuleFiles {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("cluster: Prometheus rule file: %w", err)
		}
	}
	return nil
}

// ScrapeTarget is one agent as Prometheus scrapes it: host:port and the
// labels the chart's PodMonitor gives it (node).
type ScrapeTarget struct {
	Address string
	Node    string
}

// Prometheus is a running prometheus process. Its targets are a file it
// watches (file_sd), so SetTargets changes them without a restart.
type Prometheus struct {
	cfg         PrometheusConfig
	dir         string
	url         string
	targetsPath string
	proc        *process
	spawner     *spawner
	log         *zap.Logger
	client      *http.Client

	mu      sync.Mutex
	stopped bool
}

// StartPrometheus starts prometheus on a free port of 127.0.0.1 with its
// data under dir (created if needed) and waits until it is ready.
func StartPrometheus(ctx context.Context, dir string, cfg PrometheusConfig) (*Prometheus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, fmt.Errorf("cluster: free port for prometheus: %w", err)
	}
	p := &Prometheus{
		cfg: cfg, dir: dir, url: "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		targetsPath: filepath.Join(dir, "targets.json"), spawner: newSpawner(),
		log: cfg.Logger.Named("prometheus"), client: &http.Client{Timeout: 5 * time.Second},
	}
	if err := p.SetTargets(nil); err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	conf, err := p.configFile()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(configPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	args := []string{
		"--config.file=" + configPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(ports[0]),
		// A scrape of a crashed node times out; without this Prometheus
		// waits out its default 1m lookback before an instance's series go
		// stale. Tests read instant vectors right after faults.
		"--query.lookback-delta=30s",
		"--log.level=info",
	}
	proc, err := startProcess(p.spawner, "prometheus", filepath.Join(cfg.BinDir, "prometheus"), args, filepath.Join(dir, "prometheus.log"))
	if err != nil {
		p.spawner.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	p.proc = proc
	p.log.Info("prometheus started", zap.Int("pid", proc.pid()), zap.String("url", p.url))
	if err := p.waitReady(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// configFile is prometheus.yml: one job reading the targets file.
func (p *Prometheus) configFile() ([]byte, error) {
	scrape := map[string]any{
		"job_name":                 PrometheusJob,
		"scrape_interval":          model.Duration(p.cfg.ScrapeInterval).String(),
		"scrape_timeout":           model.Duration(p.cfg.ScrapeInterval).String(),
		"file_sd_configs":          []any{map[string]any{"files": []string{p.targetsPath}, "refresh_interval": "1s"}},
		"honor_labels":             false,
		"metrics_path":             "/metrics",
		"scheme":                   "http",
		"enable_http2":             false,
		"follow_redirects":         false,
		"sample_limit":             20000,
		"body_size_limit":          "8MB",
		"label_limit":              64,
		"label_value_length_limit": 256,
	}
	if p.cfg.BearerTokenFile != "" {
		scrape["authorization"] = map[string]any{"type": "Bearer", "credentials_file": p.cfg.BearerTokenFile}
	}
	conf := map[string]any{
		"global": map[string]any{
			"scrape_interval":     model.Duration(p.cfg.ScrapeInterval).String(),
			"evaluation_interval": model.Duration(p.cfg.EvaluationInterval).String(),
		},
		"rule_files":     p.cfg.RuleFiles,
		"scrape_configs": []any{scrape},
	}
	out, err := yaml.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("cluster: prometheus.yml: %w", err)
	}
	return out, nil
}

// SetTargets replaces the scrape targets. The file is written whole and
// renamed into place, so Prometheus never reads half of it.
func (p *Prometheus) SetTargets(targets []ScrapeTarget) error {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	for _, t := range targets {
		groups = append(groups, group{Targets: []string{t.Address}, Labels: map[string]string{"node": t.Node}})
	}
	data, err := json.Marshal(groups)
	if err != nil {
		return err
	}
	tmp := p.targetsPath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.Rename(tmp, p.targetsPath); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// URL is Prometheus' base URL.
func (p *Prometheus) URL() string { return p.url }

// LogPath is Prometheus' log file.
func (p *Prometheus) LogPath() string { return filepath.Join(p.dir, "prometheus.log") }

// LogTail returns the last n lines of Prometheus' log.
func (p *Prometheus) LogTail(n int) string {
	s, err := tailFile(p.LogPath(), n)
	if err != nil {
		return err.Error()
	}
	return s
}

// Err is non-nil once the process has exited.
func (p *Prometheus) Err() error {
	if done, err := p.proc.exited(); done {
		return fmt.Errorf("cluster: prometheus exited: %v; log tail:\n%s", err, p.LogTail(20))
	}
	return nil
}

func (p *Prometheus) waitReady(ctx context.Context) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		if _, err := p.get(ctx, "/-/ready", nil); err != nil {
			last = err
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("cluster: waiting for prometheus to be ready: %w (last error: %v)", err, last)
	}
	return nil
}

func (p *Prometheus) get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	u := p.url + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("prometheus GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// apiResponse is the envelope of Prometheus' HTTP API.
type apiResponse struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  string          `json:"error"`
}

func (p *Prometheus) api(ctx context.Context, path string, query url.Values, into any) error {
	body, err := p.get(ctx, path, query)
	if err != nil {
		return err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("prometheus %s: %w", path, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("prometheus %s: %s", path, r.Error)
	}
	return json.Unmarshal(r.Data, into)
}

// Alert is one alert as Prometheus' /api/v1/alerts lists it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// State is "pending" (its expression holds, its `for:` not yet) or
	// "firing".
	State    string    `json:"state"`
	ActiveAt time.Time `json:"activeAt"`
	Value    string    `json:"value"`
}

// Name is the alert's name.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Key names the alert instance: its name and its labels, sorted.
func (a Alert) Key() string {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(a.Name())
	b.WriteString("{")
	first := true
	for _, k := range keys {
		if k == "alertname" {
			continue
		}
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%s=%q", k, a.Labels[k])
	}
	b.WriteString("}")
	return b.String()
}

// Alerts lists the pending and firing alerts.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	if err := p.api(ctx, "/api/v1/alerts", nil, &data); err != nil {
		return nil, err
	}
	return data.Alerts, nil
}

// Firing lists the firing alerts only.
func (p *Prometheus) Firing(ctx context.Context) ([]Alert, error) {
	all, err := p.Alerts(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(a Alert) bool { return a.State != "firing" }), nil
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant query whose result is a vector.
func (p *Prometheus) Query(ctx context.Context, q string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.api(ctx, "/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus query %q: result type %s, want vector", q, data.ResultType)
	}
	out := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus query %q: value %v: %w", q, r.Value[1], err)
		}
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Target is one active scrape target.
type Target struct {
	Labels    map[string]string `json:"labels"`
	Health    string            `json:"health"` // up, down or unknown
	LastError string            `json:"lastError"`
}

// Targets lists the active scrape targets.
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	if err := p.api(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	return data.ActiveTargets, nil
}

// TargetHealth maps each active target's node label to its health ("up",
// "down", "unknown").
func (p *Prometheus) TargetHealth(ctx context.Context) (map[string]string, error) {
	targets, err := p.Targets(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(targets))
	for _, t := range targets {
		out[t.Labels["node"]] = t.Health
	}
	return out, nil
}

// Stop kills prometheus. Its directory is left for the caller.
func (p *Prometheus) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	var err error
	if p.proc != nil {
		err = p.proc.kill(10 * time.Second)
	}
	p.spawner.close()
	return err
}

// ScaleRuleDurations returns a rule file whose every `for:` and
// `keep_firing_for:` is divided by div (at least 1s where it was set), so
// that a test sees an alert fire and resolve in seconds where the shipped
// rules wait minutes. Expressions are left as they are: range windows in
// them keep their length, and a test must not rely on an alert whose
// resolution waits for a long window to pass.
func ScaleRuleDurations(data []byte, div int) ([]byte, error) {
	if div < 1 {
		return nil, fmt.Errorf("cluster: ScaleRuleDurations divisor (%d) must be at least 1", div)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cluster: rule file: %w", err)
	}
	groups, _ := doc["groups"].([]any)
	if len(groups) == 0 {
		return nil, errors.New("cluster: rule file has no groups")
	}
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		rules, _ := gm["rules"].([]any)
		for _, r := range rules {
			rm, _ := r.(map[string]any)
			for _, key := range []string{"for", "keep_firing_for"} {
				s, ok := rm[key].(string)
				if !ok {
					continue
				}
				d, err := model.ParseDuration(s)
				if err != nil {
					return nil, fmt.Errorf("cluster: rule %v: %s %q: %w", rm["alert"], key, s, err)
				}
				scaled := max(time.Duration(d)/time.Duration(div), time.Second).Round(time.Second)
				if d == 0 {
					scaled = 0
				}
				rm[key] = model.Duration(scaled).String()
			}
		}
	}
	return yaml.Marshal(doc)
}

// AlertChange is a change of one alert instance that an AlertWatcher saw.
type AlertChange struct {
	At    time.Time
	Alert Alert
	// From and To are "", "pending" or "firing"; "" is absent (resolved,
	// or not yet raised).
	From, To string
}

// AlertWatcher polls Prometheus' alerts and keeps every change it sees, so
// that a test can ask afterwards what fired, when, and how many instances of
// an alert fired at once.
type AlertWatcher struct {
	prom     *Prometheus
	interval time.Duration
	onChange func(AlertChange)

	mu      sync.Mutex
	current map[string]Alert
	changes []AlertChange
	lastErr error
	polls   int

	stop chan struct{}
	done chan struct{}
}

// WatchAlerts polls every interval until Stop. onChange, if set, is called
// for each change, from the polling goroutine.
func (p *Prometheus) WatchAlerts(interval time.Duration, onChange func(AlertChange)) *AlertWatcher {
	w := &AlertWatcher{prom: p, interval: interval, onChange: onChange, current: map[string]Alert{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *AlertWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.poll()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *AlertWatcher) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	alerts, err := w.prom.Alerts(ctx)
	now := time.Now()
	w.mu.Lock()
	w.polls++
	if err != nil {
		w.lastErr = err
		w.mu.Unlock()
		return
	}
	w.lastErr = nil
	seen := make(map[string]Alert, len(alerts))
	var changes []AlertChange
	for _, a := range alerts {
		k := a.Key()
		seen[k] = a
		if old, ok := w.current[k]; !ok || old.State != a.State {
			changes = append(changes, AlertChange{At: now, Alert: a, From: old.State, To: a.State})
		}
	}
	for k, old := range w.current {
		if _, ok := seen[k]; !ok {
			changes = append(changes, AlertChange{At: now, Alert: old, From: old.State, To: ""})
		}
	}
	slices.SortFunc(changes, func(a, b AlertChange) int { return strings.Compare(a.Alert.Key(), b.Alert.Key()) })
	w.current = seen
	w.changes = append(w.changes, changes...)
	w.mu.Unlock()
	if w.onChange != nil {
		for _, c := range changes {
			w.onChange(c)
		}
	}
}

// Stop ends the polling and waits for it.
func (w *AlertWatcher) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Changes returns every change seen so far, oldest first.
func (w *AlertWatcher) Changes() []AlertChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes)
}

// Current returns the alerts of the last successful poll.
func (w *AlertWatcher) Current() []Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Alert, 0, len(w.current))
	for _, a := range w.current {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Err is the error of the last poll, nil if it succeeded.
func (w *AlertWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// FiredSince returns the alert instances that went to firing at or after
// since, each once, in the order they first fired.
func (w *AlertWatcher) FiredSince(since time.Time) []Alert {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Alert
	keys := map[string]bool{}
	for _, c := range w.changes {
		if c.At.Before(since) || c.To != "firing" || keys[c.Alert.Key()] {
			continue
		}
		keys[c.Alert.Key()] = true
		out = append(out, c.Alert)
	}
	return out
}

// WriteScaledRules writes the rule file src into dir with its durations
// divided by div (ScaleRuleDurations) and returns the copy's path.
func WriteScaledRules(src, dir string, div int) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	scaled, err := ScaleRuleDurations(data, div)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))+".scaled.yaml")
	if err := os.WriteFile(path, scaled, 0o644); err != nil {
		return "", fmt.Errorf("cluster: %w", err)
	}
	return path, nil
}

// ScrapeNodes makes the nodes' agents the scrape targets, labelled with
// their node names, and waits until Prometheus has scraped each of them.
func (p *Prometheus) ScrapeNodes(ctx context.Context, nodes []*Node) error {
	targets := make([]ScrapeTarget, 0, len(nodes))
	for _, n := range nodes {
		a := n.Agent()
		if a == nil {
			continue
		}
		targets = append(targets, ScrapeTarget{Address: strings.TrimPrefix(a.URL(), "http://"), Node: n.Name()})
	}
	if err := p.SetTargets(targets); err != nil {
		return err
	}
	var down []string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if err := p.Err(); err != nil {
			return false, err
		}
		health, err := p.TargetHealth(ctx)
		if err != nil {
			return false, nil
		}
		down = down[:0]
		for _, t := range targets {
			if health[t.Node] != "up" {
				down = append(down, t.Node)
			}
		}
		return len(down) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("cluster: waiting for prometheus to scrape every agent: %w (not yet: %v)", err, down)
	}
	return nil
}

package main

// This file is over 500 lines: the simulator's tables, JSON and summaries
// are one output format, kept together so that a column and its JSON field
// change together.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/haagent/haagent/agent/gossip"
)

// results is the whole simulation, as written to -json.
type results struct {
	Command    []string `json:"command"`
	Date       string   `json:"date"`
	Finished   string   `json:"finished,omitempty"`
	GoVersion  string   `json:"go_version"`
	GOMAXPROCS int      `json:"gomaxprocs"`
	NumCPU     int      `json:"num_cpu"`
	// Load averages of the machine (1, 5, 15 min) at the start and end:
	// other work on the same cores slows the simulation.
	LoadAtStart string         `json:"load_average_at_start"`
	LoadAtEnd   string         `json:"load_average_at_end,omitempty"`
	TookS       float64        `json:"took_seconds,omitempty"`
	Options     map[string]any `json:"options"`
	Runs        []runResult    `json:"runs"`
}

func (o options) export() map[string]any {
	return map[string]any{
		"n": o.sizes, "profiles": o.profiles, "loss": o.losses, "delay": o.delay.String(), "crashes": o.crashes, "coordinator_crashes": o.coordinatorCrashes,
		"quiet": o.quiet.String(), "settle": o.settle.String(), "timeout": o.timeout.String(), "batch": o.batch, "discovery": o.discovery, "pace": o.pace,
		"converge_timeout": o.convergeTimeout.String(), "crash_timeout": o.crashTimeout.String(),
		"decide_tick": o.decideTick.String(), "max_rss_mib": o.maxRSSMiB,
		"budget": o.budget.String(), "loss_sizes": o.lossSizes, "run_timeout": o.runTimeout.String(), "gc_percent": o.gcPercent,
		"delay_spread": o.delaySpread.String(), "jitter": o.jitter.String(), "stalls_per_member_hour": o.stallsPerHour,
		"stall_min": o.stallMin.String(), "stall_max": o.stallMax.String(), "probe_interval": o.probeInterval.String(),
		"probe_timeout": o.probeTimeout.String(), "gossip_interval": o.gossipInterval.String(), "push_pull_interval": o.pushPull.String(), "suspicion_mult": o.suspicionMult,
		"indirect_checks": o.indirectChecks, "clock": "virtual (testing/synctest)",
	}
}

// profileTimings are the gossip timings a run used, in seconds.
type profileTimings struct {
	ProbeIntervalS    float64 `json:"probe_interval_seconds"`
	ProbeTimeoutS     float64 `json:"probe_timeout_seconds"`
	SuspicionMult     int     `json:"suspicion_mult"`
	IndirectChecks    int     `json:"indirect_checks"`
	GossipIntervalS   float64 `json:"gossip_interval_seconds"`
	PushPullIntervalS float64 `json:"push_pull_interval_seconds"`
}

// crashSample is one crash. Times are seconds after the crash; nil when it
// did not happen before the run gave up waiting.
type crashSample struct {
	Victim    string  `json:"victim"`
	AtS       float64 `json:"at_seconds"` // since the run started
	Survivors int     `json:"survivors"`
	SeenDead  int     `json:"survivors_that_saw_it_dead"`
	// DeadBeforeCrash counts survivors that had (falsely) declared it dead
	// before the crash; they count as seeing the death at once (0 s), and
	// their declaration is also counted as a false death.
	DeadBeforeCrash int      `json:"survivors_that_saw_it_dead_before_the_crash,omitempty"`
	FirstS          *float64 `json:"first_seconds"`
	HalfS           *float64 `json:"half_seconds"`
	AllS            *float64 `json:"all_seconds"`
	// DecisionS is when the decision core alone, on the Lease holder's
	// view and ballots, would have started the failover (see
	// coordinator); RecordS when a coordinator created its NodeFailover
	// record in the API, and RecordBy which member's; CordonS when the
	// Node was cordoned.
	DecisionS *float64 `json:"decision_seconds"`
	RecordS   *float64 `json:"record_seconds"`
	RecordBy  string   `json:"record_by,omitempty"`
	CordonS   *float64 `json:"cordon_seconds"`
	// LeaseHolder: the victim held the coordinator Lease; TakeoverS is
	// when another member held it.
	LeaseHolder bool     `json:"lease_holder,omitempty"`
	TakeoverS   *float64 `json:"lease_takeover_seconds,omitempty"`
	Held        string   `json:"held,omitempty"`
	// Votes explains a crash that got no decision.
	Votes    string `json:"votes_when_given_up,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	// ObserversS is every survivor's delay to see the member dead, sorted.
	ObserversS []float64 `json:"observers_seconds"`
}

// summary of one measure over a run's crashes, in seconds (nearest rank).
type summary struct {
	Count   int      `json:"count"`
	Missing int      `json:"missing"`
	P50     *float64 `json:"p50"`
	P90     *float64 `json:"p90"`
	P99     *float64 `json:"p99"`
	Max     *float64 `json:"max"`
}

func summarise(xs []*float64) summary {
	var v []float64
	s := summary{}
	for _, x := range xs {
		if x == nil {
			s.Missing++
			continue
		}
		v = append(v, *x)
	}
	s.Count = len(v)
	if len(v) == 0 {
		return s
	}
	sort.Float64s(v)
	s.P50, s.P90, s.P99 = ptr(v[rank(len(v), 0.5)]), ptr(v[rank(len(v), 0.9)]), ptr(v[rank(len(v), 0.99)])
	s.Max = ptr(v[len(v)-1])
	return s
}

// traffic is the gossip traffic of a phase, per member and second, over
// the members alive from its start to its end.
type traffic struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	Members int     `json:"members"`
	// Sent bytes and messages: UDP packets, and streams (push/pull,
	// joins, TCP probes) with their bytes both ways, counted at the
	// member that opened them.
	SentBytesPerMemberS float64 `json:"sent_bytes_per_second_per_member"`
	// The bytes split: UDP packets (probes, gossip, votes), and streams
	// (full state exchanges: memberlist's push/pull and the agent's rejoin).
	PacketBytesPerMemberS float64 `json:"packet_bytes_per_second_per_member"`
	StreamBytesPerMemberS float64 `json:"stream_bytes_per_second_per_member"`
	SentMsgsPerMemberS    float64 `json:"sent_messages_per_second_per_member"`
	// StreamsPerMemberS are the streams opened: the idle ones are full
	// state exchanges, whose bytes each grow with N.
	StreamsPerMemberS   float64 `json:"streams_per_second_per_member"`
	VotesSentPerMemberS float64 `json:"votes_sent_per_second_per_member"`
	VotesInPerMemberS   float64 `json:"votes_received_per_second_per_member"`
	// VotesFreshPerMemberS are the received votes passed on to peers.
	VotesFreshPerMemberS float64 `json:"votes_received_fresh_per_second_per_member"`
}

func trafficBetween(phase string, ms []*member, before, after map[int]counters, d time.Duration) traffic {
	t := traffic{Phase: phase, Seconds: d.Seconds()}
	var sum counters
	for _, m := range ms {
		b, ok1 := before[m.idx]
		a, ok2 := after[m.idx]
		if !ok1 || !ok2 {
			continue
		}
		t.Members++
		sum.sentBytes += a.sentBytes - b.sentBytes
		sum.packetBytes += a.packetBytes - b.packetBytes
		sum.sentMsgs += a.sentMsgs - b.sentMsgs
		sum.streams += a.streams - b.streams
		sum.votesSent += a.votesSent - b.votesSent
		sum.votesIn += a.votesIn - b.votesIn
		sum.votesFresh += a.votesFresh - b.votesFresh
	}
	if t.Members == 0 || t.Seconds <= 0 {
		return t
	}
	per := float64(t.Members) * t.Seconds
	t.SentBytesPerMemberS = sum.sentBytes / per
	t.PacketBytesPerMemberS = sum.packetBytes / per
	t.StreamBytesPerMemberS = (sum.sentBytes - sum.packetBytes) / per
	t.SentMsgsPerMemberS = sum.sentMsgs / per
	t.StreamsPerMemberS = sum.streams / per
	t.VotesSentPerMemberS = sum.votesSent / per
	t.VotesInPerMemberS = sum.votesIn / per
	t.VotesFreshPerMemberS = sum.votesFresh / per
	return t
}

// Keys of runResult.Detection.
const (
	keyFirst    = "first_survivor"
	keyHalf     = "half_of_survivors"
	keyAll      = "all_survivors"
	keyDecision = "decision_start"
	keyRecord   = "record_created"
	keyCordon   = "node_cordoned"
	// Of the crashes of the Lease holder, apart from the others.
	keyHolderHalf     = "lease_holder_half_of_survivors"
	keyHolderRecord   = "lease_holder_record_created"
	keyHolderTakeover = "lease_holder_takeover"
)

// runResult is one size, profile and loss rate.
type runResult struct {
	N       int            `json:"n"`
	Profile string         `json:"profile"`
	Loss    float64        `json:"loss"`
	DelayS  float64        `json:"delay_seconds"`
	Timings profileTimings `json:"timings"`
	// The protocol's own figures for this size.
	DetectionBoundS float64 `json:"detection_bound_seconds"`
	SuspicionMinS   float64 `json:"suspicion_timeout_min_seconds"`
	SuspicionMaxS   float64 `json:"suspicion_timeout_max_seconds"`
	CrashTimeoutS   float64 `json:"crash_timeout_seconds"`

	Stopped          string  `json:"stopped,omitempty"`
	Converged        bool    `json:"converged"`
	StartS           float64 `json:"all_started_seconds"`
	ConvergenceS     float64 `json:"convergence_seconds"`
	ConvergedMinView int     `json:"smallest_view"`
	// SettleS is how long the formation's traffic took to die down after
	// convergence (see -settle).
	SettleS float64 `json:"settle_seconds"`
	// Settled is whether it did die down within -settle.
	Settled bool `json:"settled"`

	Crashes   []crashSample      `json:"crashes"`
	Detection map[string]summary `json:"detection"`

	// False are suspect and dead events about live members, by phase.
	False        map[string]falseCounts `json:"false_events"`
	FalseSamples []falseEvent           `json:"false_event_samples,omitempty"`
	// WrongActions are failover decisions (start, or held only by a guard)
	// about a live member: there must be none.
	WrongActions []wrongAction `json:"wrong_actions"`
	WrongCount   int           `json:"wrong_action_count"`
	Stalls       stallStats    `json:"stalls"`
	// Repeats is how many runs in fresh groups were pooled (-repeat).
	Repeats int `json:"repeats"`

	Traffic          []traffic    `json:"traffic"`
	Phases           []phaseUsage `json:"phases"`
	RSSAtStartBytes  uint64       `json:"rss_bytes_at_start"`
	PeakRSSBytes     uint64       `json:"peak_rss_bytes"`
	PacketsDelivered int64        `json:"packets_delivered"`
	PacketsDropped   int64        `json:"packets_dropped"`
	// PacketsOverflowed of PacketsDropped found their receiver's buffer
	// full: members that fell behind (see simnet's packetQueue).
	PacketsOverflowed int64   `json:"packets_overflowed"`
	DecideRounds      int     `json:"decide_rounds"`
	DecideMeanMS      float64 `json:"decide_mean_ms"`
	DecideMaxMS       float64 `json:"decide_max_ms"`
	NotStopped        int     `json:"members_not_stopped_in_time"`
	// VirtualS and WallS are the run's length on the simulated clock and
	// in real time, from the first member's start to the last crash.
	VirtualS float64 `json:"virtual_seconds"`
	WallS    float64 `json:"wall_seconds"`

	// Load averages of the machine when the run started and ended.
	LoadAtStart string `json:"load_average_at_start,omitempty"`
	LoadAtEnd   string `json:"load_average_at_end,omitempty"`
	// Set by the parent: its estimate of the run's duration (for
	// -budget), and the child process's wall time, CPU time (user +
	// system, from its rusage) and peak resident memory.
	EstimateS          float64 `json:"estimate_seconds,omitempty"`
	ProcessWallS       float64 `json:"process_wall_seconds,omitempty"`
	ProcessCPUS        float64 `json:"process_cpu_seconds,omitempty"`
	ProcessMaxRSSBytes uint64  `json:"process_max_rss_bytes,omitempty"`
}

// quietRates are the quiet period's rates per member: false suspicions and
// deaths per member-hour, and CPU seconds per simulated second per member
// (an estimate of the cores one member needs: it includes the simulator's
// own work, the network's among it).
type quietRates struct {
	ok                   bool
	suspectPerMemberHour float64
	deadPerMemberHour    float64
	cpuPerMember         float64
}

func (r *runResult) quietRates() quietRates {
	q, ok := r.traffic(phaseQuiet)
	p, ok2 := r.phase(phaseQuiet)
	if !ok || !ok2 || q.Members == 0 || q.Seconds <= 0 {
		return quietRates{}
	}
	hours := float64(q.Members) * q.Seconds / 3600
	f := r.False[phaseQuiet]
	return quietRates{ok: true, suspectPerMemberHour: float64(f.Suspect) / hours, deadPerMemberHour: float64(f.Dead) / hours,
		cpuPerMember: p.CPUPerVirtualS / float64(q.Members)}
}

func newRunResult(o options, spec runSpec, p gossip.Profile) runResult {
	cfg := gossipConfig(o, "sim", spec.profile, spec.n)
	lo, hi := suspicionTimeouts(p, spec.n)
	return runResult{
		N: spec.n, Profile: spec.profile, Loss: spec.loss, DelayS: o.delay.Seconds(),
		Timings: profileTimings{
			ProbeIntervalS: p.ProbeInterval.Seconds(), ProbeTimeoutS: p.ProbeTimeout.Seconds(),
			SuspicionMult: p.SuspicionMult, IndirectChecks: p.IndirectChecks,
			GossipIntervalS: p.GossipInterval.Seconds(), PushPullIntervalS: p.PushPullInterval.Seconds(),
		},
		DetectionBoundS: cfg.DetectionBound(spec.n).Seconds(),
		SuspicionMinS:   lo.Seconds(),
		SuspicionMaxS:   hi.Seconds(),
		Detection:       map[string]summary{},
		False:           map[string]falseCounts{},
	}
}

func skipped(o options, spec runSpec, why string) runResult {
	r := newRunResult(o, spec, gossipConfig(o, "sim", spec.profile, spec.n).Effective())
	r.Stopped = why
	return r
}

// merge pools repeated runs of one spec: their crashes, false events,
// wrong actions and stalls, and the lengths and costs of their phases;
// traffic rates are averaged over the runs' lengths. The first run's
// convergence stands for all.
func merge(rs []runResult) runResult {
	r := rs[0]
	r.Repeats = len(rs)
	r.False = map[string]falseCounts{}
	for p, c := range rs[0].False {
		r.False[p] = c
	}
	for _, x := range rs[1:] {
		r.Crashes = append(r.Crashes, x.Crashes...)
		r.WrongActions = append(r.WrongActions, x.WrongActions...)
		r.WrongCount += x.WrongCount
		for p, c := range x.False {
			f := r.False[p]
			f.Suspect, f.Dead = f.Suspect+c.Suspect, f.Dead+c.Dead
			f.OfStalledSuspect, f.OfStalledDead = f.OfStalledSuspect+c.OfStalledSuspect, f.OfStalledDead+c.OfStalledDead
			r.False[p] = f
		}
		r.Stalls.Count += x.Stalls.Count
		r.Stalls.MemberSeconds += x.Stalls.MemberSeconds
		r.Stalls.MaxAtOnce = max(r.Stalls.MaxAtOnce, x.Stalls.MaxAtOnce)
		r.Converged = r.Converged && x.Converged
		if r.Stopped == "" {
			r.Stopped = x.Stopped
		}
		r.VirtualS += x.VirtualS
		r.WallS += x.WallS
		r.ProcessWallS += x.ProcessWallS
		r.ProcessCPUS += x.ProcessCPUS
		r.ProcessMaxRSSBytes = max(r.ProcessMaxRSSBytes, x.ProcessMaxRSSBytes)
		r.PeakRSSBytes = max(r.PeakRSSBytes, x.PeakRSSBytes)
		r.PacketsDelivered += x.PacketsDelivered
		r.PacketsDropped += x.PacketsDropped
		r.PacketsOverflowed += x.PacketsOverflowed
		r.Phases = append([]phaseUsage(nil), r.Phases...)
		for i, p := range r.Phases {
			if q, ok := x.phase(p.Phase); ok {
				p.VirtualS, p.WallS, p.CPUS = p.VirtualS+q.VirtualS, p.WallS+q.WallS, p.CPUS+q.CPUS
				if p.WallS > 0 {
					p.Cores = p.CPUS / p.WallS
				}
				if p.VirtualS > 0 {
					p.CPUPerVirtualS = p.CPUS / p.VirtualS
				}
				r.Phases[i] = p
			}
		}
		r.Traffic = append([]traffic(nil), r.Traffic...)
		for i, t := range r.Traffic {
			if u, ok := x.traffic(t.Phase); ok && t.Seconds+u.Seconds > 0 {
				a, b := t.Seconds/(t.Seconds+u.Seconds), u.Seconds/(t.Seconds+u.Seconds)
				avg := func(p, q float64) float64 { return a*p + b*q }
				t.SentBytesPerMemberS = avg(t.SentBytesPerMemberS, u.SentBytesPerMemberS)
				t.PacketBytesPerMemberS = avg(t.PacketBytesPerMemberS, u.PacketBytesPerMemberS)
				t.StreamBytesPerMemberS = avg(t.StreamBytesPerMemberS, u.StreamBytesPerMemberS)
				t.SentMsgsPerMemberS = avg(t.SentMsgsPerMemberS, u.SentMsgsPerMemberS)
				t.VotesSentPerMemberS = avg(t.VotesSentPerMemberS, u.VotesSentPerMemberS)
				t.VotesInPerMemberS = avg(t.VotesInPerMemberS, u.VotesInPerMemberS)
				t.VotesFreshPerMemberS = avg(t.VotesFreshPerMemberS, u.VotesFreshPerMemberS)
				t.Seconds += u.Seconds
				r.Traffic[i] = t
			}
		}
	}
	r.summarise()
	return r
}

// summarise sums the crashes up: those of the Lease holder apart.
func (r *runResult) summarise() {
	var first, half, all, dec, rec, cordon, hHalf, hRec, hTake []*float64
	for _, c := range r.Crashes {
		if c.LeaseHolder {
			hHalf, hRec, hTake = append(hHalf, c.HalfS), append(hRec, c.RecordS), append(hTake, c.TakeoverS)
			continue
		}
		first, half, all, dec = append(first, c.FirstS), append(half, c.HalfS), append(all, c.AllS), append(dec, c.DecisionS)
		rec, cordon = append(rec, c.RecordS), append(cordon, c.CordonS)
	}
	r.Detection = map[string]summary{
		keyFirst: summarise(first), keyHalf: summarise(half), keyAll: summarise(all), keyDecision: summarise(dec),
		keyRecord: summarise(rec), keyCordon: summarise(cordon),
		keyHolderHalf: summarise(hHalf), keyHolderRecord: summarise(hRec), keyHolderTakeover: summarise(hTake),
	}
}

func (r *runResult) phase(name string) (phaseUsage, bool) {
	for _, p := range r.Phases {
		if p.Phase == name {
			return p, true
		}
	}
	return phaseUsage{}, false
}

func (r *runResult) traffic(name string) (traffic, bool) {
	for _, t := range r.Traffic {
		if t.Phase == name {
			return t, true
		}
	}
	return traffic{}, false
}

func (res *results) wrongActions() int {
	n := 0
	for _, r := range res.Runs {
		n += r.WrongCount
	}
	return n
}

func (res *results) write(path string) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// printTables prints three tables per profile and loss rate, sizes as rows:
// detection, its distribution, and the cost.
func printTables(w io.Writer, res *results) {
	type group struct {
		profile string
		loss    float64
	}
	var order []group
	byGroup := map[group][]runResult{}
	for _, r := range res.Runs {
		g := group{r.Profile, r.Loss}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], r)
	}
	fmt.Fprintf(w, "haagent-sim %s\n%s, %s, GOMAXPROCS %d, %d cores; load average %s at the start, %s at the end; took %.0fs\n",
		strings.Join(res.Command[1:], " "), res.Date, res.GoVersion, res.GOMAXPROCS, res.NumCPU, res.LoadAtStart, res.LoadAtEnd, res.TookS)
	for _, g := range order {
		runs := byGroup[g]
		sort.SliceStable(runs, func(i, j int) bool { return runs[i].N < runs[j].N })
		t := runs[0].Timings
		fmt.Fprintf(w, "\n== profile %s (probe %gs, timeout %gs, suspicion x%d, indirect %d, gossip %gs, push-pull %gs), loss %g%%, delay %gms\n",
			g.profile, t.ProbeIntervalS, t.ProbeTimeoutS, t.SuspicionMult, t.IndirectChecks, t.GossipIntervalS, t.PushPullIntervalS, 100*g.loss, 1000*runs[0].DelayS)

		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "N\tstart\tconverge\tsusp.min\tcrashes\tdetect half p50\tp99\tall p99\trecorded\trecord p50\tp99\tcore p50\tp99\tfalse susp/dead\tper member-hour\tWRONG\t")
		for _, r := range runs {
			if r.skippedBeforeStart() {
				fmt.Fprintf(tw, "%d\t-\t-\t%.1fs\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.N, r.SuspicionMinS)
				continue
			}
			h, d, a, rc := r.Detection[keyHalf], r.Detection[keyDecision], r.Detection[keyAll], r.Detection[keyRecord]
			start, conv := "-", "NO"
			if r.StartS > 0 {
				start = fmt.Sprintf("%.1fs", r.StartS)
			}
			if r.Converged {
				conv = fmt.Sprintf("%.1fs", r.ConvergenceS)
			}
			falses, rates := "-", "-"
			if q := r.quietRates(); q.ok {
				fq := r.False[phaseQuiet]
				falses = fmt.Sprintf("%d/%d", fq.Suspect, fq.Dead)
				rates = fmt.Sprintf("%.2f/%.2f", q.suspectPerMemberHour, q.deadPerMemberHour)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%.1fs\t%d\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n",
				r.N, start, conv, r.SuspicionMinS, len(r.Crashes), sec(h.P50), sec(h.P99), sec(a.P99), rc.Count, rc.Count+rc.Missing,
				sec(rc.P50), sec(rc.P99), sec(d.P50), sec(d.P99), falses, rates, r.WrongCount)
		}
		tw.Flush()

		fmt.Fprintln(w, "  detection distribution, seconds after the crash (p50/p90/p99/max):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "N\tfirst survivor\thalf of survivors\tall survivors\trecord created\tcordoned\tdecision core\t")
		for _, r := range runs {
			if len(r.Crashes) == 0 {
				continue
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.N, dist(r.Detection[keyFirst]), dist(r.Detection[keyHalf]),
				dist(r.Detection[keyAll]), dist(r.Detection[keyRecord]), dist(r.Detection[keyCordon]), dist(r.Detection[keyDecision]))
		}
		tw.Flush()

		fmt.Fprintln(w, "  crashes of the coordinator Lease holder, seconds after the crash (p50/p90/p99/max):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "N\tcrashes\thalf of survivors\tLease taken over\trecord created\t")
		for _, r := range runs {
			if h := r.Detection[keyHolderRecord]; h.Count+h.Missing > 0 {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t\n", r.N, h.Count+h.Missing, dist(r.Detection[keyHolderHalf]),
					dist(r.Detection[keyHolderTakeover]), dist(h))
			}
		}
		tw.Flush()

		fmt.Fprintln(w, "  cost per member (quiet period, and crash phase), and of the simulation:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "N\tB/s quiet\tUDP/stream\tmsg/s\tvotes in/s\tB/s crash\tmsg/s crash\tCPU est.\tpeak RSS\tKiB/member\tsim s\twall s\twall/sim\t")
		for _, r := range runs {
			if r.skippedBeforeStart() {
				continue
			}
			bps, split, mps, vps, cbps, cmps := "-", "-", "-", "-", "-", "-"
			if q, ok := r.traffic(phaseQuiet); ok && q.Members > 0 {
				bps, mps, vps = fmt.Sprintf("%.0f", q.SentBytesPerMemberS), fmt.Sprintf("%.1f", q.SentMsgsPerMemberS), fmt.Sprintf("%.1f", q.VotesInPerMemberS)
				split = fmt.Sprintf("%.0f/%.0f", q.PacketBytesPerMemberS, q.StreamBytesPerMemberS)
			}
			if c, ok := r.traffic(phaseCrash); ok && c.Members > 0 {
				cbps, cmps = fmt.Sprintf("%.0f", c.SentBytesPerMemberS), fmt.Sprintf("%.1f", c.SentMsgsPerMemberS)
			}
			cpu := "-"
			if q := r.quietRates(); q.ok {
				cpu = fmt.Sprintf("%.5f", q.cpuPerMember)
			}
			peak := max(r.PeakRSSBytes, r.ProcessMaxRSSBytes)
			rss, per := "-", "-"
			if peak > 0 {
				rss = fmt.Sprintf("%dMiB", peak>>20)
				per = fmt.Sprintf("%.0f", float64(peak)/1024/float64(r.N))
			}
			wall, ratio := "-", "-"
			if r.ProcessWallS > 0 {
				wall = fmt.Sprintf("%.0f", r.ProcessWallS)
			}
			if r.VirtualS > 0 {
				ratio = fmt.Sprintf("%.2f", r.WallS/r.VirtualS)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", r.N, bps, split, mps, vps, cbps, cmps, cpu, rss, per,
				r.VirtualS, wall, ratio)
		}
		tw.Flush()
		for _, r := range runs {
			for _, note := range r.notes() {
				fmt.Fprintf(w, "  N=%d: %s\n", r.N, note)
			}
		}
	}
	fmt.Fprintln(w, `
All times of the protocol are on the simulated clock (testing/synctest): what they would be if every member had a CPU
of its own. start: first member started until all N were; converge: until every member saw all N; susp.min:
memberlist's shortest suspicion timeout at N; detect: crash until that share of the survivors saw the member dead;
recorded: crashes whose NodeFailover record the coordinator that holds the Lease (agent/coordinator, on an
in-memory API) created in time; record: crash until it did; cordoned: until it cordoned the Node; core: crash until
the decision core alone, on the Lease holder's view and ballots, would have started the failover (the measure before
the coordinators ran here); the crashes of the Lease holder itself (-coordinator-crashes) are apart, with the time
until another member held the Lease; false susp/dead: suspect and dead events about live members in the quiet
period, in all and per member-hour; WRONG: records or cordons of a live member, and failovers the decision core
started (or held only by a guard) about one, in the whole run.
Cost: bytes and messages sent per member per second, votes received (crash: not counting the Lease holder's
crashes, whose votes go to every member); CPU est.: CPU seconds per simulated second per
member in the quiet period, simulator included (an estimate); peak RSS of the run's process and per member; sim s and
wall s: the run's simulated and wall-clock length (wall s: the whole process); wall/sim: wall seconds per simulated
second. With fewer than 100 crashes, p99 is their maximum.`)
	if n := res.wrongActions(); n > 0 {
		fmt.Fprintf(w, "\n*** %d WRONG ACTION(S): failovers decided about live members; see wrong_actions in the JSON ***\n", n)
	} else {
		fmt.Fprintln(w, "\nwrong actions: 0 in every run.")
	}
}

// skippedBeforeStart reports a run that was never started.
func (r *runResult) skippedBeforeStart() bool {
	return strings.HasPrefix(r.Stopped, "not started") || strings.HasPrefix(r.Stopped, "skipped")
}

// dist prints a summary as p50/p90/p99/max, with the misses.
func dist(s summary) string {
	if s.Count == 0 {
		if s.Missing > 0 {
			return fmt.Sprintf("none of %d", s.Missing)
		}
		return "-"
	}
	out := fmt.Sprintf("%s/%s/%s/%s", secShort(s.P50), secShort(s.P90), secShort(s.P99), secShort(s.Max))
	if s.Missing > 0 {
		out += fmt.Sprintf(" (%d missing)", s.Missing)
	}
	return out
}

func secShort(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *f)
}

// notes explain a row: stops, misses, starvation.
func (r *runResult) notes() []string {
	var out []string
	if r.Stopped != "" {
		out = append(out, r.Stopped)
	}
	if !r.Converged && r.Stopped == "" {
		out = append(out, fmt.Sprintf("did not converge (smallest view %d of %d)", r.ConvergedMinView, r.N))
	}
	if r.Converged {
		settled := fmt.Sprintf("formation traffic settled %.0fs later", r.SettleS)
		if !r.Settled && r.SettleS > 0 {
			settled = fmt.Sprintf("formation traffic had not settled %.0fs later (idle figures include some)", r.SettleS)
		}
		out = append(out, fmt.Sprintf("all %d started in %.1fs, converged in %.1fs; %s", r.N, r.StartS, r.ConvergenceS, settled))
	}
	timedOut, noDecision, noRecord := 0, 0, 0
	for _, c := range r.Crashes {
		if c.TimedOut {
			timedOut++
		}
		if c.DecisionS == nil {
			noDecision++
		}
		if c.RecordS == nil {
			noRecord++
		}
	}
	if timedOut > 0 {
		out = append(out, fmt.Sprintf("%d of %d crashes not seen dead by every survivor or not decided within %.0fs", timedOut, len(r.Crashes), r.CrashTimeoutS))
	}
	if noRecord > 0 {
		out = append(out, fmt.Sprintf("%d of %d crashes got no failover record from a coordinator", noRecord, len(r.Crashes)))
	}
	if noDecision > 0 {
		out = append(out, fmt.Sprintf("%d of %d crashes got no decision from the decision core alone", noDecision, len(r.Crashes)))
	}
	if f, d := r.Detection[keyFirst], r.Detection[keyDecision]; f.Count > 0 {
		out = append(out, fmt.Sprintf("detection first survivor p50 %s max %s; decision max %s; crash phase false susp/dead %d/%d",
			sec(f.P50), sec(f.Max), sec(d.Max), r.False[phaseCrash].Suspect, r.False[phaseCrash].Dead))
	}
	if q, ok := r.traffic(phaseQuiet); ok {
		out = append(out, fmt.Sprintf("quiet period: votes received %.1f/s per member (%.1f passed on)",
			q.VotesInPerMemberS, q.VotesFreshPerMemberS))
		if q.StreamsPerMemberS > 0 {
			out = append(out, fmt.Sprintf("quiet period: %.4f streams/s per member (one per %.0fs), %.0f bytes each, both ways",
				q.StreamsPerMemberS, 1/q.StreamsPerMemberS, q.StreamBytesPerMemberS/q.StreamsPerMemberS))
		}
	}
	if r.PacketsOverflowed > 0 {
		out = append(out, fmt.Sprintf("receivers fell behind: %d of %d packets dropped at a full receive buffer",
			r.PacketsOverflowed, r.PacketsDelivered+r.PacketsDropped))
	}
	if r.Stalls.Count > 0 {
		q, c := r.False[phaseQuiet], r.False[phaseCrash]
		out = append(out, fmt.Sprintf("stalls: %d (%.0f member-seconds, at most %d at once); false susp/dead of stalled members: quiet %d/%d, crash phase %d/%d",
			r.Stalls.Count, r.Stalls.MemberSeconds, r.Stalls.MaxAtOnce, q.OfStalledSuspect, q.OfStalledDead, c.OfStalledSuspect, c.OfStalledDead))
	}
	for _, p := range r.Phases {
		if p.VirtualS > 0 {
			out = append(out, fmt.Sprintf("%s: %.1f simulated s in %.0f wall s, %.1f CPU s, machine %.0f%% busy", p.Phase, p.VirtualS, p.WallS, p.CPUS, 100*p.MachineCP))
		}
	}
	return out
}

func sec(f *float64) string {
	if f == nil {
		return "-"
	}
	return fmt.Sprintf("%.2fs", *f)
}

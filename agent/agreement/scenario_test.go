package agreement

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/haagent/haagent/agent/failover"
)

// TestScenarios replays testdata/*.txt on the core (rewrite the expected
// output with -rewrite). This agent is "me", started with epoch 1; the
// clock starts at t=0 and moves only with advance.
//
//	config repeat-interval=2s repeat-max=16 recheck-interval=2s delivery=coordinator
//	                                   first, if at all: the Config
//	member name=(b,c) state=suspect [epoch=N] [addr=h:p] [ack=-1s] [quiet]
//	                                   gossip's table changes and (unless
//	                                   quiet) publishes the event
//	holder [name=c]                    the Lease holder (none without name)
//	vote from=c about=b opinion=dead [epoch=1] [seq=N] [target-epoch=N]
//	notice from=c about=b [epoch=1] [seq=N] [target-epoch=N]
//	check-result about=b result=unreachable|reachable|inconclusive [id=N]
//	                                   the newest check of b ends (or check id)
//	tick repeat|recheck                a timer fires
//	underway about=b                   the coordinator's wish to send a notice
//	advance 1s                         the clock moves
//	restart epoch=N                    this agent restarts: a new core
//	stop                               Run ends
//	opinions | ballots about=b         print the core's state
//
// Every step also runs on a twin core fed the same events (a batch of
// members in another order), which must answer the same, and the effects
// are checked against the rules the agreement keeps (see check).
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := newHarness(t, DefaultConfig())
		datadriven.RunTest(t, path, h.run)
	})
}

// mapWorld is the membership table and Lease holder of a scenario.
type mapWorld struct {
	peers map[string]peer
	lease string
}

func (w *mapWorld) peer(name string) (peer, bool) { p, ok := w.peers[name]; return p, ok }
func (w *mapWorld) holder() string                { return w.lease }

type harness struct {
	t      *testing.T
	cfg    Config
	zero   time.Time
	now    time.Time
	w      *mapWorld
	rnd    *rand.Rand
	epoch  int64
	cores  [2]*machine // the core and its twin
	checks [2]map[string]uint64
	// voteSeq and noticeSeq number the messages of each peer.
	voteSeq, noticeSeq map[string]uint64
	inv                invariants
}

func newHarness(t *testing.T, cfg Config) *harness {
	zero := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	h := &harness{t: t, cfg: cfg, zero: zero, now: zero, w: &mapWorld{peers: map[string]peer{}},
		rnd: rand.New(rand.NewPCG(1, 2)), voteSeq: map[string]uint64{}, noticeSeq: map[string]uint64{}}
	h.restart(1)
	return h
}

// restart starts new cores with epoch, as a restarted agent starts.
func (h *harness) restart(epoch int64) {
	h.epoch = epoch
	h.w.peers["me"] = peer{Name: "me", Addr: "10.0.0.1:7946", State: peerAlive, Epoch: epoch, Local: true}
	for i := range h.cores {
		h.cores[i] = newMachine(h.cfg, "me", h.w)
		h.cores[i].Step(memberChanged{Change: changeUpdate, Peer: h.w.peers["me"]}, h.now)
		h.cores[i].Step(started{}, h.now)
		h.checks[i] = map[string]uint64{}
	}
	h.inv = newInvariants(h.cfg)
}

func (h *harness) run(t *testing.T, d *datadriven.TestData) string {
	h.t = t
	switch d.Cmd {
	case "config":
		h.configure(d)
		return "ok"
	case "member":
		return h.member(d)
	case "holder":
		h.w.lease = ""
		d.MaybeScanArgs(t, "name", &h.w.lease)
		return "ok"
	case "vote":
		return h.vote(d)
	case "notice":
		return h.notice(d)
	case "check-result":
		return h.checkResult(d)
	case "tick":
		switch {
		case d.HasArg("repeat"):
			return h.step(d, repeatTick{})
		case d.HasArg("recheck"):
			return h.step(d, recheckTick{})
		}
		t.Fatalf("%s: tick repeat or tick recheck", d.Pos)
	case "underway":
		var about string
		d.ScanArgs(t, "about", &about)
		return h.step(d, underWay{Target: about})
	case "advance":
		dur, err := time.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		h.now = h.now.Add(dur)
		return fmt.Sprintf("t=%s", h.now.Sub(h.zero))
	case "restart":
		var epoch int64
		d.ScanArgs(t, "epoch", &epoch)
		h.restart(epoch)
		return "ok"
	case "stop":
		return h.step(d, stopped{})
	case "opinions":
		return h.opinions()
	case "ballots":
		var about string
		d.ScanArgs(t, "about", &about)
		var b strings.Builder
		for _, v := range h.cores[0].ballots.Votes(about) {
			fmt.Fprintf(&b, "%s %s epoch=%d seq=%d target-epoch=%d\n", v.Voter, v.Opinion, v.VoterEpoch, v.Seq, v.TargetEpoch)
		}
		return b.String()
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func (h *harness) configure(d *datadriven.TestData) {
	for _, arg := range d.CmdArgs {
		var err error
		switch v := arg.SingleVal(h.t); arg.Key {
		case "repeat-interval":
			h.cfg.RepeatInterval, err = time.ParseDuration(v)
		case "recheck-interval":
			h.cfg.RecheckInterval, err = time.ParseDuration(v)
		case "repeat-max":
			_, err = fmt.Sscan(v, &h.cfg.RepeatMax)
		case "delivery":
			h.cfg.Delivery = v
		default:
			err = fmt.Errorf("unknown key %q", arg.Key)
		}
		if err != nil {
			h.t.Fatalf("%s: config: %v", d.Pos, err)
		}
	}
	if err := h.cfg.Validate(); err != nil {
		h.t.Fatalf("%s: %v", d.Pos, err)
	}
	h.restart(h.epoch)
}

var (
	states  = map[string]peerState{"alive": peerAlive, "suspect": peerSuspect, "dead": peerDead, "left": peerLeft}
	changes = map[peerState]memberChange{peerAlive: changeAlive, peerSuspect: changeSuspect, peerDead: changeDead, peerLeft: changeLeft}
)

func (h *harness) member(d *datadriven.TestData) string {
	arg, ok := d.Arg("name")
	if !ok {
		h.t.Fatalf("%s: member needs name=", d.Pos)
	}
	state := "alive"
	d.MaybeScanArgs(h.t, "state", &state)
	var evs []event
	for _, name := range arg.Vals {
		p, known := h.w.peers[name]
		if !known {
			p = peer{Name: name, Addr: fmt.Sprintf("10.0.0.%d:7946", len(h.w.peers)+1), Epoch: 1}
		}
		p.State = states[state]
		if p.State == 0 {
			h.t.Fatalf("%s: unknown state %q", d.Pos, state)
		}
		d.MaybeScanArgs(h.t, "epoch", &p.Epoch)
		d.MaybeScanArgs(h.t, "addr", &p.Addr)
		var ack string
		if d.MaybeScanArgs(h.t, "ack", &ack) {
			p.LastAck = h.now.Add(h.duration(d, ack))
		}
		h.w.peers[name] = p
		evs = append(evs, memberChanged{Change: changes[p.State], Peer: p})
	}
	if d.HasArg("quiet") {
		return "ok"
	}
	return h.steps(d, evs)
}

func (h *harness) vote(d *datadriven.TestData) string {
	var from, about, op string
	d.ScanArgs(h.t, "from", &from)
	d.ScanArgs(h.t, "about", &about)
	d.ScanArgs(h.t, "opinion", &op)
	o, err := failover.ParseOpinion(op)
	if err != nil {
		h.t.Fatalf("%s: %v", d.Pos, err)
	}
	v := failover.Vote{Voter: from, Target: about, Opinion: o, VoterEpoch: 1, TargetEpoch: h.w.peers[about].Epoch, At: h.now}
	d.MaybeScanArgs(h.t, "epoch", &v.VoterEpoch)
	d.MaybeScanArgs(h.t, "target-epoch", &v.TargetEpoch)
	h.voteSeq[from]++
	v.Seq = h.voteSeq[from]
	if d.MaybeScanArgs(h.t, "seq", &v.Seq) {
		h.voteSeq[from] = v.Seq
	}
	return h.step(d, voteReceived{Vote: v})
}

func (h *harness) notice(d *datadriven.TestData) string {
	var from, about string
	d.ScanArgs(h.t, "from", &from)
	d.ScanArgs(h.t, "about", &about)
	n := failover.Notice{Coordinator: from, Target: about, CoordinatorEpoch: 1, TargetEpoch: h.w.peers[about].Epoch}
	d.MaybeScanArgs(h.t, "epoch", &n.CoordinatorEpoch)
	d.MaybeScanArgs(h.t, "target-epoch", &n.TargetEpoch)
	h.noticeSeq[from]++
	n.Seq = h.noticeSeq[from]
	if d.MaybeScanArgs(h.t, "seq", &n.Seq) {
		h.noticeSeq[from] = n.Seq
	}
	return h.step(d, noticeReceived{Notice: n})
}

func (h *harness) checkResult(d *datadriven.TestData) string {
	var about, result string
	d.ScanArgs(h.t, "about", &about)
	d.ScanArgs(h.t, "result", &result)
	ev := checkDone{Target: about, Reachable: result == "reachable", Conclusive: result != "inconclusive"}
	if result != "reachable" && result != "unreachable" && result != "inconclusive" {
		h.t.Fatalf("%s: result %q: want reachable, unreachable or inconclusive", d.Pos, result)
	}
	var evs [2]event
	for i := range h.cores {
		ev.ID = h.checks[i][about]
		d.MaybeScanArgs(h.t, "id", &ev.ID)
		evs[i] = ev
	}
	return h.stepEach(d, evs)
}

func (h *harness) duration(d *datadriven.TestData, s string) time.Duration {
	dur, err := time.ParseDuration(s)
	if err != nil {
		h.t.Fatalf("%s: %v", d.Pos, err)
	}
	return dur
}

func (h *harness) step(d *datadriven.TestData, ev event) string {
	return h.stepEach(d, [2]event{ev, ev})
}

// stepEach steps the core with evs[0] and the twin with evs[1], which must
// answer the same.
func (h *harness) stepEach(d *datadriven.TestData, evs [2]event) string {
	var out [2][]string
	for i, c := range h.cores {
		if i == 0 {
			h.inv.observe(h, evs[i])
		}
		out[i] = h.format(i, c.Step(evs[i], h.now))
	}
	if !slices.Equal(out[0], out[1]) {
		h.t.Errorf("%s: the twin core answered\n%s\nnot\n%s", d.Pos, strings.Join(out[1], "\n"), strings.Join(out[0], "\n"))
	}
	return h.report(d, out[0])
}

// steps steps the core with evs in order and the twin with them shuffled:
// the effects, sorted and with sequence numbers and check ids aside, must
// be the same.
func (h *harness) steps(d *datadriven.TestData, evs []event) string {
	shuffled := slices.Clone(evs)
	h.rnd.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var out [2][]string
	for i, list := range [2][]event{evs, shuffled} {
		for _, ev := range list {
			if i == 0 {
				h.inv.observe(h, ev)
			}
			out[i] = append(out[i], h.format(i, h.cores[i].Step(ev, h.now))...)
		}
	}
	if a, b := normalize(out[0]), normalize(out[1]); !slices.Equal(a, b) {
		h.t.Errorf("%s: the twin core, fed the members in another order, answered\n%s\nnot\n%s", d.Pos, strings.Join(b, "\n"), strings.Join(a, "\n"))
	}
	return h.report(d, out[0])
}

var numbering = regexp.MustCompile(`\b(seq|id)=\d+`)

func normalize(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = numbering.ReplaceAllString(l, "$1=_")
	}
	slices.Sort(out)
	return out
}

// report checks the core's effects against the rules and prints them.
func (h *harness) report(d *datadriven.TestData, lines []string) string {
	for _, err := range h.inv.errs {
		h.t.Errorf("%s: %s", d.Pos, err)
	}
	h.inv.errs = nil
	if len(lines) == 0 {
		return "ok"
	}
	return strings.Join(lines, "\n")
}

var counterNames = map[counter]string{
	counterReceived: "votes_received", counterSuppressed: "votes_suppressed", counterDeferred: "repeats_deferred",
	counterEarlyVerdicts: "early_verdicts", counterPrechecks: "prechecks", counterNotices: "notices_received",
}

// format prints the effects of core i, noting the checks it starts, and,
// for the core, checks them against the rules.
func (h *harness) format(i int, effs []effect) []string {
	if i == 0 {
		h.inv.check(h, effs)
	}
	var out []string
	for _, e := range effs {
		switch e := e.(type) {
		case sendVote:
			v := e.Vote
			s := fmt.Sprintf("vote about=%s opinion=%s epoch=%d seq=%d target-epoch=%d", v.Target, v.Opinion, v.VoterEpoch, v.Seq, v.TargetEpoch)
			if !v.LastAck.IsZero() {
				s += fmt.Sprintf(" ack=t%s", v.LastAck.Sub(h.zero))
			}
			if e.To != "" {
				s += " to=" + e.To
			}
			out = append(out, s)
		case sendNotice:
			n := e.Notice
			out = append(out, fmt.Sprintf("notice about=%s target-epoch=%d epoch=%d seq=%d", n.Target, n.TargetEpoch, n.CoordinatorEpoch, n.Seq))
		case startCheck:
			h.checks[i][e.Target] = e.ID
			out = append(out, fmt.Sprintf("check %s addr=%s id=%d", e.Target, e.Addr, e.ID))
		case cancelCheck:
			out = append(out, fmt.Sprintf("cancel-check %s id=%d", e.Target, e.ID))
		case relay:
			out = append(out, "relay")
		case count:
			name := counterNames[e.Counter]
			if e.Label != "" {
				name += "{" + e.Label + "}"
			}
			out = append(out, fmt.Sprintf("%s +%d", name, e.N))
		case logLine:
			out = append(out, "log: "+e.Msg+" "+strings.Join(pairs(e.Fields), " "))
		default:
			h.t.Fatalf("unknown effect %T", e)
		}
	}
	return out
}

func pairs(kv []string) []string {
	var out []string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, kv[i]+"="+kv[i+1])
	}
	return out
}

func (h *harness) opinions() string {
	c := h.cores[0]
	names := make([]string, 0, len(c.opinions))
	for n := range c.opinions {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, c.opinions[n].op)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

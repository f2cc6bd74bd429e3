package failover

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios replays the scenario files in testdata/ with
// cockroachdb/datadriven. A file is a list of commands, each followed by
// "----" and its expected output; only decide and ballots print anything.
// Lines starting with "#" are comments. All members start alive in zone
// "a" with agent epoch 1; times are relative to the scenario's clock.
//
//	config key=value ...       set Config fields (vote-max-age, max-dead-fraction,
//	                           zone-min-nodes, burst, interval, not-ready-after);
//	                           the others keep their value; a new Decider follows
//	members n1 n2 ...          add alive members
//	zone z n1 n2 ...           move members to zone z
//	state n1,n2 dead           the coordinator's view of members: alive, suspect,
//	                           dead or left
//	epoch n1 7                 n1's agent restarted with epoch 7
//	optout n1 | optin n1       maintenance opt-out
//	notready n1                n1 reports itself not ready from now on, for the
//	<reason>                   reason given on the next line
//	ready n1                   n1 reports itself ready again
//	vote v1,v2 n1 dead [target-epoch=N] [ack=-2s] [at=-1s]
//	                           votes about n1 received now, the next of each
//	                           voter; ack and at are relative to now
//	advance 5s                 move the clock
//	active n1 [not-ready]      a failover record of n1 exists; not-ready: it
//	                           drains a node that is not ready
//	inactive n1                it no longer does
//	pause on|off               the operator's pause
//	ballots n1                 print the newest vote of each voter about n1,
//	                           whatever its age, and how long ago it came
//	decide                     print the pause guard and the decisions, or
//	                           "nothing"
//
// Every decide is checked again by the invariants of checkDecide.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		s := newScenario()
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			return s.run(t, td)
		})
	})
}

// scenario is the world a scenario file builds: the coordinator's view of
// the members, its ballots, its failover records and its clock.
type scenario struct {
	cfg     Config
	dec     *Decider
	now     time.Time
	members map[string]*Member
	order   []string // members in the order added: the order Decide is given
	ballots *Ballots
	seq     map[string]uint64
	active  map[string]bool
	drain   map[string]bool
	paused  bool
}

func newScenario() *scenario {
	return &scenario{
		cfg:     DefaultConfig(),
		now:     time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		members: map[string]*Member{},
		ballots: NewBallots(),
		seq:     map[string]uint64{},
		active:  map[string]bool{},
		drain:   map[string]bool{},
	}
}

// args returns the command's arguments in order: bare words, and
// key=value for the others.
func args(td *datadriven.TestData) []string {
	out := make([]string, 0, len(td.CmdArgs))
	for _, a := range td.CmdArgs {
		out = append(out, a.String())
	}
	return out
}

func (s *scenario) run(t *testing.T, td *datadriven.TestData) string {
	a := args(td)
	want := func(n int, usage string) {
		if len(a) < n {
			td.Fatalf(t, "usage: %s %s", td.Cmd, usage)
		}
	}
	member := func(name string) *Member {
		m, ok := s.members[name]
		if !ok {
			td.Fatalf(t, "unknown member %q", name)
		}
		return m
	}
	duration := func(v string) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		return d
	}
	integer := func(v string) int64 {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		return n
	}

	switch td.Cmd {
	case "config":
		for _, arg := range td.CmdArgs {
			v := arg.SingleVal(t)
			switch arg.Key {
			case "vote-max-age":
				s.cfg.VoteMaxAge = duration(v)
			case "interval":
				s.cfg.Interval = duration(v)
			case "not-ready-after":
				s.cfg.NotReadyAfter = duration(v)
			case "max-dead-fraction":
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					td.Fatalf(t, "%v", err)
				}
				s.cfg.MaxDeadFraction = f
			case "zone-min-nodes":
				s.cfg.ZoneMinNodes = int(integer(v))
			case "burst":
				s.cfg.Burst = int(integer(v))
			default:
				td.Fatalf(t, "unknown config %q", arg.Key)
			}
		}
		s.dec = nil
	case "members":
		want(1, "n1 n2 ...")
		for _, n := range a {
			if _, ok := s.members[n]; ok {
				td.Fatalf(t, "member %q added twice", n)
			}
			s.members[n] = &Member{Name: n, State: StateAlive, Zone: "a", Epoch: 1}
			s.order = append(s.order, n)
		}
	case "zone":
		want(2, "z n1 n2 ...")
		for _, n := range a[1:] {
			member(n).Zone = a[0]
		}
	case "state":
		want(2, "n1,n2 alive|suspect|dead|left")
		st := parseState(a[1])
		if st == 0 {
			td.Fatalf(t, "unknown state %q", a[1])
		}
		for _, n := range strings.Split(a[0], ",") {
			member(n).State = st
		}
	case "epoch":
		want(2, "n1 epoch")
		member(a[0]).Epoch = integer(a[1])
	case "optout", "optin":
		want(1, "n1")
		member(a[0]).OptOut = td.Cmd == "optout"
	case "notready":
		want(1, "n1, and the reason on the next line")
		if td.Input == "" {
			td.Fatalf(t, "notready: the reason goes on the line after the command")
		}
		m := member(a[0])
		m.NotReadySince, m.NotReadyReason = s.now, td.Input
	case "ready":
		want(1, "n1")
		m := member(a[0])
		m.NotReadySince, m.NotReadyReason = time.Time{}, ""
	case "vote":
		want(3, "v1,v2 target opinion [target-epoch=N] [ack=-2s] [at=-1s]")
		op, err := ParseOpinion(a[2])
		if err != nil {
			td.Fatalf(t, "%v", err)
		}
		for _, voter := range strings.Split(a[0], ",") {
			s.seq[voter]++
			v := Vote{Voter: voter, Target: a[1], Opinion: op, VoterEpoch: 1, Seq: s.seq[voter], At: s.now}
			for _, arg := range td.CmdArgs[3:] {
				val := arg.SingleVal(t)
				switch arg.Key {
				case "target-epoch":
					v.TargetEpoch = integer(val)
				case "ack":
					v.LastAck = s.now.Add(duration(val))
				case "at":
					v.At = s.now.Add(duration(val))
				default:
					td.Fatalf(t, "unknown vote field %q", arg.Key)
				}
			}
			s.ballots.Add(v, s.now)
		}
	case "advance":
		want(1, "5s")
		s.now = s.now.Add(duration(a[0]))
	case "active", "inactive":
		want(1, "n1 [not-ready]")
		s.active[a[0]] = td.Cmd == "active"
		s.drain[a[0]] = td.Cmd == "active" && td.HasArg("not-ready")
	case "pause":
		want(1, "on|off")
		switch a[0] {
		case "on", "off":
			s.paused = a[0] == "on"
		default:
			td.Fatalf(t, "usage: pause on|off")
		}
	case "ballots":
		want(1, "n1")
		var b strings.Builder
		for _, v := range s.ballots.Votes(a[0]) {
			fmt.Fprintf(&b, "%s %s", v.Voter, v.Opinion)
			if v.TargetEpoch != 0 {
				fmt.Fprintf(&b, " target-epoch=%d", v.TargetEpoch)
			}
			fmt.Fprintf(&b, ", received %s ago\n", s.now.Sub(s.ballots.votes[[2]string{v.Voter, v.Target}].At))
		}
		if b.Len() == 0 {
			return "none\n"
		}
		return b.String()
	case "decide":
		if s.dec == nil {
			d, err := NewDecider(s.cfg)
			if err != nil {
				td.Fatalf(t, "%v", err)
			}
			s.dec = d
		}
		in := s.input()
		before := *s.dec
		decisions, pause := s.dec.Decide(in)
		out := render(decisions, pause)
		s.checkDecide(t, td.Pos, before, in, decisions, out)
		return out
	default:
		td.Fatalf(t, "unknown command %q", td.Cmd)
	}
	return ""
}

// input is what the coordinator would hand Decide now.
func (s *scenario) input() Input {
	ms := make([]Member, 0, len(s.order))
	for _, n := range s.order {
		ms = append(ms, *s.members[n])
	}
	return Input{Now: s.now, Members: ms, Ballots: s.ballots, Active: s.active, Draining: s.drain, Paused: s.paused}
}

// render prints a decide's result as the scenario files show it.
func render(decisions []Decision, pause string) string {
	var b strings.Builder
	if pause != "" {
		fmt.Fprintf(&b, "guard: %s\n", pause)
	}
	for _, d := range decisions {
		fmt.Fprintln(&b, d)
	}
	if b.Len() == 0 {
		return "nothing\n"
	}
	return b.String()
}

func parseState(name string) State {
	for s := StateAlive; s <= StateLeft; s++ {
		if s.String() == name {
			return s
		}
	}
	return 0
}

package failover

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output of the scenario files")

// TestScenarios replays testdata/*.txt. Each file is a list of commands;
// the lines starting with "> " after a "decide" are its expected output.
//
//	config key=value ...          Config fields: vote-max-age, max-dead-fraction, zone-min-nodes, burst, interval, not-ready-after
//	members n1 n2 ...             add alive members in zone "a" (epoch 1)
//	zone z n1 n2 ...              move members to zone z
//	state n1 dead|suspect|...     the coordinator's gossip view of n1
//	epoch n1 7                    n1's agent restarted with epoch 7
//	optout n1 | optin n1          maintenance opt-out
//	notready n1 reason...         n1 reports itself not ready from now on
//	ready n1                      n1 reports itself ready again
//	vote v1,v2 target opinion [target-epoch=N] [ack=-2s] [at=-1s]
//	                              votes received now; times relative to now
//	advance 5s                    move the clock
//	active n1 [not-ready] | inactive n1
//	                              a failover record exists (or no longer);
//	                              not-ready: it drains a node not ready
//	pause on|off                  operator pause
//	decide                        print the decisions
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

type scenario struct {
	t       *testing.T
	cfg     Config
	dec     *Decider
	now     time.Time
	members map[string]*Member
	order   []string
	ballots *Ballots
	seq     map[string]uint64
	active  map[string]bool
	drain   map[string]bool
	paused  bool
}

func runScenario(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{
		t: t, cfg: DefaultConfig(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		members: map[string]*Member{}, ballots: NewBallots(), seq: map[string]uint64{}, active: map[string]bool{}, drain: map[string]bool{},
	}
	lines := strings.Split(string(data), "\n")
	var out []string
	mismatch := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.HasPrefix(line, "> ") {
			continue // expected output of a decide, read there
		}
		out = append(out, line)
		fields := strings.Fields(strings.SplitN(line, "#", 2)[0])
		if len(fields) == 0 {
			continue
		}
		got := s.exec(i+1, fields)
		if fields[0] != "decide" {
			continue
		}
		var want []string
		for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], "> "); j++ {
			want = append(want, strings.TrimPrefix(lines[j], "> "))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			mismatch = true
			if !*update {
				t.Errorf("%s:%d: decide\n got:\n  %s\nwant:\n  %s", path, i+1, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		}
		for _, g := range got {
			out = append(out, "> "+g)
		}
	}
	if *update && mismatch {
		if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func (s *scenario) fail(line int, format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("line %d: %s", line, fmt.Sprintf(format, args...))
}

func (s *scenario) member(line int, name string) *Member {
	m, ok := s.members[name]
	if !ok {
		s.fail(line, "unknown member %q", name)
	}
	return m
}

func (s *scenario) duration(line int, v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fail(line, "%v", err)
	}
	return d
}

func (s *scenario) exec(line int, f []string) []string {
	switch f[0] {
	case "config":
		for _, kv := range f[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "vote-max-age":
				s.cfg.VoteMaxAge = s.duration(line, v)
			case "interval":
				s.cfg.Interval = s.duration(line, v)
			case "max-dead-fraction":
				s.cfg.MaxDeadFraction, _ = strconv.ParseFloat(v, 64)
			case "zone-min-nodes":
				s.cfg.ZoneMinNodes, _ = strconv.Atoi(v)
			case "burst":
				s.cfg.Burst, _ = strconv.Atoi(v)
			case "not-ready-after":
				s.cfg.NotReadyAfter = s.duration(line, v)
			default:
				s.fail(line, "unknown config %q", k)
			}
		}
		s.dec = nil
	case "members":
		for _, n := range f[1:] {
			s.members[n] = &Member{Name: n, State: StateAlive, Zone: "a", Epoch: 1}
			s.order = append(s.order, n)
		}
	case "zone":
		for _, n := range f[2:] {
			s.member(line, n).Zone = f[1]
		}
	case "state":
		st := parseState(f[2])
		if st == 0 {
			s.fail(line, "unknown state %q", f[2])
		}
		for _, n := range strings.Split(f[1], ",") {
			s.member(line, n).State = st
		}
	case "epoch":
		e, _ := strconv.ParseInt(f[2], 10, 64)
		s.member(line, f[1]).Epoch = e
	case "optout", "optin":
		s.member(line, f[1]).OptOut = f[0] == "optout"
	case "notready":
		m := s.member(line, f[1])
		m.NotReadySince, m.NotReadyReason = s.now, strings.Join(f[2:], " ")
	case "ready":
		m := s.member(line, f[1])
		m.NotReadySince, m.NotReadyReason = time.Time{}, ""
	case "vote":
		op, err := ParseOpinion(f[3])
		if err != nil {
			s.fail(line, "%v", err)
		}
		for _, voter := range strings.Split(f[1], ",") {
			s.seq[voter]++
			v := Vote{Voter: voter, Target: f[2], Opinion: op, VoterEpoch: 1, Seq: s.seq[voter], At: s.now}
			for _, kv := range f[4:] {
				k, val, _ := strings.Cut(kv, "=")
				switch k {
				case "target-epoch":
					v.TargetEpoch, _ = strconv.ParseInt(val, 10, 64)
				case "ack":
					v.LastAck = s.now.Add(s.duration(line, val))
				case "at":
					v.At = s.now.Add(s.duration(line, val))
				default:
					s.fail(line, "unknown vote field %q", k)
				}
			}
			s.ballots.Add(v, s.now)
		}
	case "advance":
		s.now = s.now.Add(s.duration(line, f[1]))
	case "active", "inactive":
		s.active[f[1]] = f[0] == "active"
		s.drain[f[1]] = f[0] == "active" && len(f) > 2 && f[2] == "not-ready"
	case "pause":
		s.paused = f[1] == "on"
	case "decide":
		if s.dec == nil {
			var err error
			if s.dec, err = NewDecider(s.cfg); err != nil {
				s.fail(line, "%v", err)
			}
		}
		var ms []Member
		for _, n := range s.order {
			ms = append(ms, *s.members[n])
		}
		decisions, pause := s.dec.Decide(Input{Now: s.now, Members: ms, Ballots: s.ballots, Active: s.active, Draining: s.drain, Paused: s.paused})
		var out []string
		if pause != "" {
			out = append(out, "guard: "+pause)
		}
		for _, d := range decisions {
			out = append(out, d.String())
		}
		if len(out) == 0 {
			out = append(out, "nothing")
		}
		return out
	default:
		s.fail(line, "unknown command %q", f[0])
	}
	return nil
}

func parseState(name string) State {
	for s := StateAlive; s <= StateLeft; s++ {
		if s.String() == name {
			return s
		}
	}
	return 0
}

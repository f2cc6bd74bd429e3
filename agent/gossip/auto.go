package gossip

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProfileAuto is the profile whose timings follow the expected group size
// (Config.ExpectedMembers): the band of autoBands it falls in.
const ProfileAuto = "auto"

// autoBand is one row of the auto profile: the timings of groups of up to
// MaxMembers members.
type autoBand struct {
	// MaxMembers is the largest group of the band; 0 in the last band,
	// which has no limit.
	MaxMembers int
	// Name is the band's label value in haagent_gossip_profile_info.
	Name string
	Profile
}

// autoBands are the auto profile, smallest groups first. Every timing of
// the rule is in this one table, so that it can be re-tuned from measured
// figures without touching the code around it.
//
// The rule, provisional until the scale simulation has measured the fast
// and default profiles from 100 to 5000 members:
//
//   - Up to 1000 members it is exactly the fast profile. What SWIM asks of
//     one member does not grow with the group: one probe per interval,
//     however many members there are, and memberlist itself stretches what
//     does grow: the suspicion timeout (× log10 N) and the push/pull
//     interval (beyond 32 members, × the members' log2 past 32).
//   - What grows is what the whole group does: N/ProbeInterval probes a
//     second, each of which may fail on a stalled process or a lost
//     packet and start a suspicion that is gossiped and refuted, with
//     retransmits that grow with log N, through a broadcast queue of a
//     fixed packet budget per gossip interval. So beyond 1000 members the
//     probe interval grows with the group, which holds the group-wide
//     probe rate to within twice that of 1000 members at 200 ms (5000 a
//     second): 2500 members at 300 ms make 8300, 5000 at 500 ms 10000.
//   - The probe timeout stays half the probe interval, as in both fixed
//     profiles; the isolation timeout stays ten probe intervals, as in
//     fast (the fence bound, and so --fence-bound's least value, is built
//     on the largest, see Config.IsolationBound). The gossip interval
//     grows more slowly than the probe interval: dissemination takes
//     log N gossip rounds, and it is what carries a death and the votes
//     to the coordinator.
//   - The push/pull base grows faster than memberlist's own stretching:
//     a full state exchange carries all N members both ways (111 bytes a
//     member in the simulation, more with long Node names), so the idle
//     bytes of each member grow as N ÷ the stretched interval. Measured
//     in the simulation at 1000 members with 15 s (× 6): 3.7 to 5.0 KB/s
//     a member, of which 3.1 to 4.5 KB/s the exchanges (memberlist's and
//     the rejoin loop's repair), one per 49 s of 222 KB. 30 s up to 2500
//     and 60 s beyond (× 8 and × 9 at 2500 and 5000, and the repair
//     spaced out as much) predict about 5 KB/s at 5000 members (see
//     docs/SIMULATION.md). The cost: views that gossip left apart are
//     repaired later. A healed partition is not among them: the rejoin
//     loop merges it every RejoinInterval, whatever the push/pull
//     interval.
var autoBands = []autoBand{
	{MaxMembers: 1000, Name: "up_to_1000", Profile: profiles["fast"]},
	{MaxMembers: 2500, Name: "up_to_2500", Profile: Profile{
		ProbeInterval:    300 * time.Millisecond,
		ProbeTimeout:     150 * time.Millisecond,
		SuspicionMult:    4,
		IndirectChecks:   3,
		GossipInterval:   150 * time.Millisecond,
		PushPullInterval: 30 * time.Second,
		TCPTimeout:       3 * time.Second,
		IsolationTimeout: 3 * time.Second,
	}},
	{Name: "above_2500", Profile: Profile{
		ProbeInterval:    500 * time.Millisecond,
		ProbeTimeout:     250 * time.Millisecond,
		SuspicionMult:    4,
		IndirectChecks:   3,
		GossipInterval:   200 * time.Millisecond,
		PushPullInterval: 60 * time.Second,
		TCPTimeout:       5 * time.Second,
		IsolationTimeout: 5 * time.Second,
	}},
}

// autoBandFor returns the band of a group of n members. n ≤ 0 means the
// size is unknown: the last band, the slowest and so the least likely to
// suspect healthy members of a large group, is the conservative choice.
func autoBandFor(n int) autoBand {
	if n > 0 {
		for _, b := range autoBands {
			if b.MaxMembers == 0 || n <= b.MaxMembers {
				return b
			}
		}
	}
	return autoBands[len(autoBands)-1]
}

// AutoProfile returns the auto profile's timings for a group of n members
// (n ≤ 0: unknown size, the last band).
func AutoProfile(n int) Profile { return autoBandFor(n).Profile }

// Band names the timing band in force: the auto band's name (such as
// "up_to_1000"), or "fixed" for a named profile.
func (c Config) Band() string {
	if c.ProfileName != ProfileAuto {
		return "fixed"
	}
	return autoBandFor(c.ExpectedMembers).Name
}

// IsolationBound is the longest isolation timeout any agent of the group
// may be using, for the fence bound, which the coordinator applies to a
// node whose agent chose its own timings: with the auto profile, a
// cut-off node may be in another band than its coordinator (it counted
// the group at another time), so the bound is the largest band's, with
// this agent's overrides applied. With a named profile it is
// Effective().IsolationTimeout.
func (c Config) IsolationBound() time.Duration {
	if c.ProfileName != ProfileAuto {
		return c.Effective().IsolationTimeout
	}
	var d time.Duration
	for _, b := range autoBands {
		c.ExpectedMembers = b.MaxMembers // 0, unknown, is the last band
		d = max(d, c.Effective().IsolationTimeout)
	}
	return d
}

// registerTimingMetrics exports the timings in force, which are fixed
// for the life of the process: the profile and band as an info metric,
// the durations as seconds by setting.
func registerTimingMetrics(reg prometheus.Registerer, c Config, p Profile) error {
	const ns, sub = "haagent", "gossip"
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "profile_info",
		Help: "Always 1: the gossip profile and, with the auto profile, the band of group sizes this agent chose its timings from at start.",
	}, []string{"profile", "band"})
	timing := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "timing_seconds",
		Help: "Gossip timings in force, fixed at start, by setting.",
	}, []string{"setting"})
	mult := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "suspicion_multiplier",
		Help: "Suspicion multiplier in force: the suspicion timeout is this × max(1, log10(members)) × the probe interval.",
	})
	for _, col := range []prometheus.Collector{info, timing, mult} {
		if err := reg.Register(col); err != nil {
			return err
		}
	}
	info.WithLabelValues(c.ProfileName, c.Band()).Set(1)
	for _, s := range []struct {
		name string
		d    time.Duration
	}{
		{"probe_interval", p.ProbeInterval},
		{"probe_timeout", p.ProbeTimeout},
		{"gossip_interval", p.GossipInterval},
		{"push_pull_interval", p.PushPullInterval},
		{"tcp_timeout", p.TCPTimeout},
		{"isolation_timeout", p.IsolationTimeout},
	} {
		timing.WithLabelValues(s.name).Set(s.d.Seconds())
	}
	mult.Set(float64(p.SuspicionMult))
	return nil
}

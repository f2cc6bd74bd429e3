package gossip

import (
	"flag"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"time"
)

// Profile names a set of memberlist timings. The trade-off is always the
// same: shorter probe intervals and suspicion timeouts notice a dead node
// sooner, but cost more packets per second and leave less room for a slow
// network or a stalled process before a healthy node is suspected.
type Profile struct {
	// ProbeInterval is how often each member probes one other member.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before the
	// member asks IndirectChecks others to probe on its behalf.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout:
	// SuspicionMult × max(1, log10(N)) × ProbeInterval.
	SuspicionMult int
	// IndirectChecks is how many members probe a target on our behalf
	// when our direct probe fails.
	IndirectChecks int
	// GossipInterval is how often queued messages are sent to GossipNodes
	// random members outside the probe cycle.
	GossipInterval time.Duration
	// PushPullInterval is how often a full state exchange is made with one
	// random member; it heals anything gossip missed.
	PushPullInterval time.Duration
	// TCPTimeout bounds a stream (join, push/pull, TCP fallback probe).
	TCPTimeout time.Duration
	// IsolationTimeout is how long a member may go without a packet from
	// a majority of the expected group before it counts itself isolated.
	// Unlike memberlist's suspicion, which Lifeguard stretches on the
	// side that hears nothing, it is a fixed local bound: the fence bound
	// is built on it.
	IsolationTimeout time.Duration
}

// Profiles are the named tuning profiles of fixed timings. "default" is
// memberlist's LAN timing, which stays quiet on busy or lossy networks;
// "fast" reacts about five times sooner (about 1.5 s to a confirmed death
// at 20 members on a quiet LAN) at five times the probe traffic. The
// "auto" profile (see autoBands) is fast up to 1000 members and slows
// down in steps beyond.
var profiles = map[string]Profile{
	"default": {
		ProbeInterval:    time.Second,
		ProbeTimeout:     500 * time.Millisecond,
		SuspicionMult:    4,
		IndirectChecks:   3,
		GossipInterval:   200 * time.Millisecond,
		PushPullInterval: 30 * time.Second,
		TCPTimeout:       5 * time.Second,
		IsolationTimeout: 5 * time.Second,
	},
	"fast": {
		ProbeInterval:    200 * time.Millisecond,
		ProbeTimeout:     100 * time.Millisecond,
		SuspicionMult:    4,
		IndirectChecks:   3,
		GossipInterval:   100 * time.Millisecond,
		PushPullInterval: 15 * time.Second,
		TCPTimeout:       2 * time.Second,
		IsolationTimeout: 2 * time.Second,
	},
}

// ProfileNames lists the profiles in a stable order, for help texts and
// error messages.
func ProfileNames() []string {
	names := []string{ProfileAuto}
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LookupProfile returns the named profile of fixed timings; "auto" is not
// one: its timings depend on the group size (see AutoProfile).
func LookupProfile(name string) (Profile, bool) {
	p, ok := profiles[name]
	return p, ok
}

// Config configures the gossip membership of one agent. Zero values of the
// timing overrides mean "take it from Profile".
type Config struct {
	// NodeName is this member's name: the Kubernetes Node name, so that a
	// member and the node it speaks for are the same thing. Required.
	NodeName string
	// Zone is the node's topology zone, published in metadata so the
	// failover guards can count dead nodes per zone. Optional.
	Zone string
	// AgentVersion is published in metadata so mixed versions during a
	// rollout are visible. Set by the binary, not by a flag.
	AgentVersion string

	// BindAddr is the IP address the gossip UDP and TCP listeners bind to.
	BindAddr string
	// BindPort is the gossip port, UDP and TCP. 0 picks a free port, which
	// is only useful in tests since peers must know the port to join.
	BindPort int
	// AdvertiseAddr is the address peers use to reach this member. Empty
	// means memberlist picks one from BindAddr (a private address when bound
	// to 0.0.0.0). In a DaemonSet it is the node's address (HOST_IP).
	AdvertiseAddr string

	// ProfileName selects the timing profile; see ProfileNames.
	ProfileName string
	// ExpectedMembers is the size of the group the auto profile chooses
	// its timings for; 0 means unknown, which picks the slowest band.
	// Memberlist's timings are fixed once it is created, so the binary
	// sets it at start (from the roster the coordinator publishes, or the
	// agent pods); an operator may pin it. Ignored by the other profiles.
	ExpectedMembers int
	// ProbeInterval overrides the profile's probe interval.
	ProbeInterval time.Duration
	// ProbeTimeout overrides the profile's probe timeout; it must be shorter
	// than the probe interval so a round ends before the next starts.
	ProbeTimeout time.Duration
	// SuspicionMult overrides the profile's suspicion multiplier.
	SuspicionMult int
	// IndirectChecks overrides the profile's number of indirect probes.
	IndirectChecks int
	// GossipInterval overrides the profile's gossip interval.
	GossipInterval time.Duration
	// PushPullInterval overrides the profile's push/pull interval, the
	// base that memberlist stretches beyond 32 members (× one more for
	// each doubling). Longer costs fewer bytes, whose full state
	// exchanges carry every member, and repairs views that gossip left
	// apart later; it also spaces out the rejoin loop's repair exchanges.
	// A healed partition is merged by the rejoin loop, not by it.
	PushPullInterval time.Duration
	// IsolationTimeout overrides the profile's isolation timeout. Shorter
	// lets the fence bound, and so the recovery of stateful pods, be
	// shorter; a shorter one makes a member ping more peers to stay in
	// touch while the API server is away (the only time it is asked).
	IsolationTimeout time.Duration

	// RejoinInterval is how often, with jitter, the agent asks its seed
	// sources for peers it does not see as alive and joins them, so that the
	// two sides of a healed partition merge again. 0 disables rejoining
	// after the first successful join.
	RejoinInterval time.Duration
	// LeaveTimeout bounds a graceful leave: announcing "leaving" in the
	// metadata and broadcasting the leave itself. It must fit in the pod's
	// termination grace period.
	LeaveTimeout time.Duration
	// DeadNodeReclaimTime is how long after a member died another process
	// may take over its name from a different address (a node whose agent
	// came back with a new IP). Shorter lets a rescheduled agent rejoin
	// sooner; too short lets two processes misconfigured with one name steal
	// it from each other.
	DeadNodeReclaimTime time.Duration

	// KeyringFile holds the gossip encryption keys, one base64 AES key
	// (16, 24 or 32 bytes) a line; the first is primary, the others are only
	// accepted, which allows rotation without downtime. Empty disables
	// encryption.
	KeyringFile string
	// ClusterLabel is sent with every packet and stream; members with
	// another label are refused, so two clusters never merge. Empty means no
	// label.
	ClusterLabel string
	// Compression compresses (LZW) what this member sends. Members read
	// compressed and uncompressed messages alike, so it may differ between
	// them. Off by default: haagent's messages are small, and compressing
	// each packet cost more CPU than anything else gossip does (a quarter
	// of it in the simulation), to save a few hundred bytes a second.
	Compression bool
}

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		BindAddr:            "0.0.0.0",
		BindPort:            7946,
		ProfileName:         ProfileAuto,
		RejoinInterval:      30 * time.Second,
		LeaveTimeout:        5 * time.Second,
		DeadNodeReclaimTime: 10 * time.Second,
	}
}

// RegisterFlags binds the configuration to command-line flags. The flag
// names are the ones Validate names in its messages, and the keys of the
// agent's config file.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.NodeName, "node-name", c.NodeName, "Kubernetes Node name of this node; the gossip member name (env NODE_NAME)")
	fs.StringVar(&c.Zone, "zone", c.Zone, "topology zone of this node, published to peers (empty: the zone label topology.kubernetes.io/zone of this Node)")
	fs.StringVar(&c.BindAddr, "bind-addr", c.BindAddr, "IP address for the gossip listeners")
	fs.IntVar(&c.BindPort, "gossip-port", c.BindPort, "gossip port (UDP and TCP)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", c.AdvertiseAddr, "address peers reach this agent at (env HOST_IP, then POD_IP)")
	fs.StringVar(&c.ProfileName, "gossip-profile", c.ProfileName, "timing profile: "+strings.Join(ProfileNames(), ", "))
	fs.IntVar(&c.ExpectedMembers, "expected-members", c.ExpectedMembers, "group size the auto profile chooses its timings for (0: counted at start from the roster, or the agent pods; unknown picks the slowest band)")
	fs.DurationVar(&c.ProbeInterval, "probe-interval", c.ProbeInterval, "override the profile's probe interval")
	fs.DurationVar(&c.ProbeTimeout, "probe-timeout", c.ProbeTimeout, "override the profile's probe timeout")
	fs.IntVar(&c.SuspicionMult, "suspicion-mult", c.SuspicionMult, "override the profile's suspicion multiplier")
	fs.IntVar(&c.IndirectChecks, "indirect-checks", c.IndirectChecks, "override the profile's number of indirect probes")
	fs.DurationVar(&c.GossipInterval, "gossip-interval", c.GossipInterval, "override the profile's gossip interval")
	fs.DurationVar(&c.PushPullInterval, "push-pull-interval", c.PushPullInterval, "override the profile's push/pull interval (full state exchange with one member; memberlist stretches it beyond 32 members)")
	fs.DurationVar(&c.IsolationTimeout, "isolation-timeout", c.IsolationTimeout, "override the profile's isolation timeout: no packet from a majority of the expected group for this long means isolated")
	fs.DurationVar(&c.RejoinInterval, "rejoin-interval", c.RejoinInterval, "how often to rejoin seeds not seen alive (0 disables)")
	fs.DurationVar(&c.LeaveTimeout, "leave-timeout", c.LeaveTimeout, "upper bound of a graceful leave at shutdown")
	fs.DurationVar(&c.DeadNodeReclaimTime, "dead-node-reclaim-time", c.DeadNodeReclaimTime, "how long after its death a member's name may be taken from a new address")
	fs.StringVar(&c.KeyringFile, "keyring-file", c.KeyringFile, "file of base64 gossip keys, one a line, the first primary")
	fs.StringVar(&c.ClusterLabel, "cluster-label", c.ClusterLabel, "label that every gossip packet carries; peers with another label are refused")
	fs.BoolVar(&c.Compression, "gossip-compression", c.Compression, "compress gossip packets and streams (more CPU, fewer bytes); peers read both")
}

// Effective returns the timings in force: the profile's (with auto, the
// band of ExpectedMembers), with the overrides applied. The profile must
// exist (Validate checks it).
func (c Config) Effective() Profile {
	p, ok := profiles[c.ProfileName]
	if !ok && c.ProfileName == ProfileAuto {
		p = AutoProfile(c.ExpectedMembers)
	}
	if c.ProbeInterval != 0 {
		p.ProbeInterval = c.ProbeInterval
	}
	if c.ProbeTimeout != 0 {
		p.ProbeTimeout = c.ProbeTimeout
	}
	if c.SuspicionMult != 0 {
		p.SuspicionMult = c.SuspicionMult
	}
	if c.IndirectChecks != 0 {
		p.IndirectChecks = c.IndirectChecks
	}
	if c.GossipInterval != 0 {
		p.GossipInterval = c.GossipInterval
	}
	if c.PushPullInterval != 0 {
		p.PushPullInterval = c.PushPullInterval
	}
	if c.IsolationTimeout != 0 {
		p.IsolationTimeout = c.IsolationTimeout
	} else {
		// A longer probe interval than the profile's stretches the
		// profile's isolation timeout with it.
		p.IsolationTimeout = max(p.IsolationTimeout, 4*p.ProbeInterval)
	}
	return p
}

// Limits of the fields that travel in metadata. Together with the encoding
// overhead they keep the metadata under memberlist's 512-byte limit.
const (
	maxNodeNameBytes     = 253 // a DNS subdomain, as Kubernetes Node names are
	maxZoneBytes         = 63  // a label value
	maxAgentVersionBytes = 64
	maxClusterLabelBytes = 255 // memberlist's own limit
	suspicionMaxMult     = 6   // memberlist's SuspicionMaxTimeoutMult (Lifeguard)
	awarenessMaxMult     = 8   // memberlist's AwarenessMaxMultiplier (Lifeguard)
	// maxExpectedMembers is far beyond Kubernetes' tested 5000 nodes; a
	// larger --expected-members is a typo.
	maxExpectedMembers = 100000
	// A push/pull interval below a second is a full state exchange many
	// times a second in a large group; beyond ten minutes (an hour and
	// more once memberlist has stretched it) views that gossip left apart
	// stay apart for too long.
	minPushPullInterval = time.Second
	maxPushPullInterval = 10 * time.Minute
)

// Validate reports the first invalid field, naming its flag and the bound.
func (c Config) Validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("gossip: --node-name is required (or set NODE_NAME)")
	}
	if len(c.NodeName) > maxNodeNameBytes {
		return fmt.Errorf("gossip: --node-name (%d bytes) must be at most %d bytes", len(c.NodeName), maxNodeNameBytes)
	}
	if len(c.Zone) > maxZoneBytes {
		return fmt.Errorf("gossip: --zone (%d bytes) must be at most %d bytes", len(c.Zone), maxZoneBytes)
	}
	if len(c.AgentVersion) > maxAgentVersionBytes {
		return fmt.Errorf("gossip: agent version (%d bytes) must be at most %d bytes", len(c.AgentVersion), maxAgentVersionBytes)
	}
	if net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("gossip: --bind-addr (%q) must be an IP address", c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return fmt.Errorf("gossip: --gossip-port (%d) must be between 0 and 65535", c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("gossip: --advertise-addr (%q) must be an IP address", c.AdvertiseAddr)
	}
	if _, ok := profiles[c.ProfileName]; !ok && c.ProfileName != ProfileAuto {
		return fmt.Errorf("gossip: --gossip-profile (%q) must be one of %s", c.ProfileName, strings.Join(ProfileNames(), ", "))
	}
	if c.ExpectedMembers < 0 || c.ExpectedMembers > maxExpectedMembers {
		return fmt.Errorf("gossip: --expected-members (%d) must be between 0 (count at start) and %d", c.ExpectedMembers, maxExpectedMembers)
	}
	if err := c.validateTimings(); err != nil {
		return err
	}
	if c.RejoinInterval != 0 && c.RejoinInterval < time.Second {
		return fmt.Errorf("gossip: --rejoin-interval (%s) must be 0 (off) or at least 1s", c.RejoinInterval)
	}
	if c.LeaveTimeout < 100*time.Millisecond || c.LeaveTimeout > time.Minute {
		return fmt.Errorf("gossip: --leave-timeout (%s) must be between 100ms and 1m0s", c.LeaveTimeout)
	}
	if c.DeadNodeReclaimTime < 0 {
		return fmt.Errorf("gossip: --dead-node-reclaim-time (%s) must not be negative", c.DeadNodeReclaimTime)
	}
	if len(c.ClusterLabel) > maxClusterLabelBytes {
		return fmt.Errorf("gossip: --cluster-label (%d bytes) must be at most %d bytes", len(c.ClusterLabel), maxClusterLabelBytes)
	}
	return nil
}

// validateTimings checks the timings in force. With the auto profile and
// the group size not yet known (as when the flags are read, before the
// agent has counted the group) it checks those of every band, so that a
// setting that only some sizes would break fails at start, the same on
// every cluster, and not when the cluster grows; its message names the
// band.
func (c Config) validateTimings() error {
	if c.ProfileName != ProfileAuto || c.ExpectedMembers > 0 {
		return validateProfile(c.Effective())
	}
	for _, b := range autoBands {
		c.ExpectedMembers = b.MaxMembers // 0, unknown, is the last band
		if err := validateProfile(c.Effective()); err != nil {
			return fmt.Errorf("%w (auto profile, band %s)", err, b.Name)
		}
	}
	return nil
}

// validateProfile checks one set of timings, overrides applied.
func validateProfile(p Profile) error {
	switch {
	case p.ProbeInterval < 10*time.Millisecond || p.ProbeInterval > time.Minute:
		return fmt.Errorf("gossip: --probe-interval (%s) must be between 10ms and 1m0s", p.ProbeInterval)
	case p.ProbeTimeout <= 0:
		return fmt.Errorf("gossip: --probe-timeout (%s) must be positive", p.ProbeTimeout)
	case p.ProbeTimeout >= p.ProbeInterval:
		return fmt.Errorf("gossip: --probe-timeout (%s) must be less than --probe-interval (%s)", p.ProbeTimeout, p.ProbeInterval)
	case p.SuspicionMult < 1 || p.SuspicionMult > 20:
		return fmt.Errorf("gossip: --suspicion-mult (%d) must be between 1 and 20", p.SuspicionMult)
	case p.IndirectChecks < 0 || p.IndirectChecks > 16:
		return fmt.Errorf("gossip: --indirect-checks (%d) must be between 0 and 16", p.IndirectChecks)
	case p.GossipInterval < 10*time.Millisecond || p.GossipInterval > 10*time.Second:
		return fmt.Errorf("gossip: --gossip-interval (%s) must be between 10ms and 10s", p.GossipInterval)
	case p.PushPullInterval < minPushPullInterval || p.PushPullInterval > maxPushPullInterval:
		return fmt.Errorf("gossip: --push-pull-interval (%s) must be between %s and %s", p.PushPullInterval, minPushPullInterval, maxPushPullInterval)
	case p.IsolationTimeout < 4*p.ProbeInterval || p.IsolationTimeout > 5*time.Minute:
		// Four probe rounds: time for the member's own probes, the probes
		// it receives and a round of pings to be heard back.
		return fmt.Errorf("gossip: --isolation-timeout (%s) must be between 4 x --probe-interval (%s) and 5m0s", p.IsolationTimeout, 4*p.ProbeInterval)
	}
	return nil
}

// suspicionTimeout is memberlist's suspicion timeout for n members: the
// shortest time a suspect is given to refute before it is declared dead.
func suspicionTimeout(p Profile, n int) time.Duration {
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	return time.Duration(float64(p.SuspicionMult) * scale * float64(p.ProbeInterval))
}

// DetectionBound is the longest a healthy group of n members should take,
// by the protocol's own arithmetic, to declare a silently crashed member
// dead: one full probe round before some member probes it (n-1 intervals in
// the worst case of memberlist's round-robin order), one interval for the
// probe and its indirect probes, and the longest Lifeguard suspicion timeout
// (no peer confirmations). It ignores Lifeguard's awareness slow-down, which
// only happens when a member is itself degraded.
func (c Config) DetectionBound(n int) time.Duration {
	p := c.Effective()
	return time.Duration(n)*p.ProbeInterval + suspicionMaxMult*suspicionTimeout(p, n)
}

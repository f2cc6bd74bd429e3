package coordinator

import (
	"flag"
	"fmt"
	"time"

	"github.com/haagent/haagent/agent/failover"
)

// Config configures the coordinator.
type Config struct {
	Lease  LeaseConfig
	Decide failover.Config
	// Enabled turns automatic failover on. Off, the agent still votes and
	// never campaigns for the Lease.
	Enabled bool
	// Tick is how often the leader decides and moves records along.
	Tick time.Duration
	// FenceBound is how long after a node is confirmed dead its stateful
	// pods (StatefulSet, ReadWriteOnce volumes) may be force-removed: the
	// agents' --fence-after plus a margin, or the time the node is known
	// to be powered off by. 0 never force-removes them: they wait for the
	// node or for a person.
	FenceBound time.Duration
	// Stabilization is how long a returned node must stay alive and Ready
	// before haagent uncordons it. It doubles for each further failover of
	// the same node within an hour, so a flapping node stays cordoned.
	Stabilization time.Duration
	// RecoveryTimeout is how long a failover may wait in Recovering for its
	// workloads to be ready elsewhere, counted on this coordinator's clock
	// from when it took the record over or the record entered Recovering.
	// Then the record ends Failed, naming the owners still short, so that a
	// failover that will not finish by itself (a replacement that cannot
	// be scheduled, a volume that stays attached) alerts instead of
	// staying active for ever. Long enough for slow image pulls and volume
	// attachments.
	RecoveryTimeout time.Duration
	// Fence are the agents' settings that bound how long a cut-off node
	// may keep running its pods: FenceBound must cover them. Not a flag of
	// its own: main derives it from the gossip, check and fence flags,
	// the same on every agent.
	Fence FenceTerms
}

// DefaultConfig enables failover with stateful recovery off.
func DefaultConfig() Config {
	return Config{
		Lease:           DefaultLeaseConfig(),
		Decide:          failover.DefaultConfig(),
		Enabled:         true,
		Tick:            250 * time.Millisecond,
		Stabilization:   2 * time.Minute,
		RecoveryTimeout: 30 * time.Minute,
	}
}

// RegisterFlags binds the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Lease.RegisterFlags(fs)
	fs.BoolVar(&c.Enabled, "failover", c.Enabled, "fail dead nodes over automatically (off: vote and alert only)")
	fs.DurationVar(&c.Tick, "coordinator-tick", c.Tick, "how often the coordinator decides and advances failovers")
	fs.DurationVar(&c.FenceBound, "fence-bound", c.FenceBound, "after confirmation, when stateful pods of a dead node may be force-removed (0: never; must exceed --fence-after)")
	fs.DurationVar(&c.Stabilization, "stabilization", c.Stabilization, "how long a returned node must stay healthy before it is uncordoned")
	fs.DurationVar(&c.RecoveryTimeout, "recovery-timeout", c.RecoveryTimeout, "how long a failover waits for its workloads to be ready elsewhere before it ends Failed")
	fs.DurationVar(&c.Decide.VoteMaxAge, "vote-max-age", c.Decide.VoteMaxAge, "how long a received vote counts")
	fs.Float64Var(&c.Decide.MaxDeadFraction, "max-dead-fraction", c.Decide.MaxDeadFraction, "pause failover when more than this fraction of nodes (cluster or zone) is dead")
	fs.IntVar(&c.Decide.ZoneMinNodes, "zone-min-nodes", c.Decide.ZoneMinNodes, "smallest zone judged on its own by --max-dead-fraction")
	fs.IntVar(&c.Decide.Burst, "failover-burst", c.Decide.Burst, "failovers that may start at once")
	fs.DurationVar(&c.Decide.Interval, "failover-interval", c.Decide.Interval, "one more failover may start each interval")
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	if err := c.Lease.Validate(); err != nil {
		return err
	}
	if err := c.Decide.Validate(); err != nil {
		return err
	}
	switch {
	case c.Tick < 10*time.Millisecond || c.Tick > 10*time.Second:
		return fmt.Errorf("coordinator: --coordinator-tick (%s) must be between 10ms and 10s", c.Tick)
	case c.Stabilization < 0 || c.Stabilization > time.Hour:
		return fmt.Errorf("coordinator: --stabilization (%s) must be between 0s and 1h0m0s", c.Stabilization)
	case c.RecoveryTimeout < time.Minute || c.RecoveryTimeout > 24*time.Hour:
		return fmt.Errorf("coordinator: --recovery-timeout (%s) must be between 1m0s and 24h0m0s", c.RecoveryTimeout)
	}
	return validateFenceBound(c.FenceBound, c.Fence)
}

package agreement

import (
	"flag"
	"fmt"
	"time"
)

// Vote deliveries: how a vote reaches the coordinator.
const (
	// DeliveryCoordinator sends each vote straight to the holder of the
	// coordinator Lease, besides gossiping it; peers pass on only votes
	// about the holder itself, which every candidate needs to take the
	// Lease from a dead holder. A vote costs O(1) packets, not O(N).
	DeliveryCoordinator = "coordinator"
	// DeliveryGossip floods every vote to every member: each vote costs
	// O(N) packets, so a death costs the group O(N²).
	DeliveryGossip = "gossip"
)

// Config tunes how opinions are kept fresh.
type Config struct {
	// RepeatInterval is how often non-alive opinions are sent again. It
	// must be well under the coordinator's vote maximum age.
	RepeatInterval time.Duration
	// RepeatMax bounds the opinions sent again in one repeat round; the
	// rest wait for the next rounds, those sent longest ago first. Dead and
	// agent-down opinions, which make decisions, go before suspect ones.
	// It bounds what a mass suspicion (an overloaded or cut-off agent that
	// sees hundreds of peers as suspect) sends every round.
	RepeatMax int
	// RecheckInterval is how often the kubelet of a node held dead or
	// agent-down is checked again.
	RecheckInterval time.Duration
	// Delivery is DeliveryCoordinator or DeliveryGossip.
	Delivery string
}

// DefaultConfig repeats at most 16 opinions and rechecks every 2 s, and
// sends votes to the coordinator. 16 opinions every 2 s keep the votes
// about up to 64 non-alive members within the coordinator's default vote
// maximum age (10 s).
func DefaultConfig() Config {
	return Config{RepeatInterval: 2 * time.Second, RepeatMax: 16, RecheckInterval: 2 * time.Second, Delivery: DeliveryCoordinator}
}

// RegisterFlags binds the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RepeatInterval, "vote-repeat-interval", c.RepeatInterval, "how often non-alive opinions are gossiped again")
	fs.IntVar(&c.RepeatMax, "vote-repeat-max", c.RepeatMax, "most non-alive opinions gossiped again each --vote-repeat-interval (dead and agent-down first, then those sent longest ago)")
	fs.DurationVar(&c.RecheckInterval, "peer-recheck-interval", c.RecheckInterval, "how often the kubelet of a dead node is checked again")
	fs.StringVar(&c.Delivery, "vote-delivery", c.Delivery, `how votes reach the coordinator: "coordinator" (sent to the Lease holder; peers pass on only votes about the holder) or "gossip" (flooded to every member)`)
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	if c.RepeatInterval < 100*time.Millisecond || c.RepeatInterval > time.Minute {
		return fmt.Errorf("agreement: --vote-repeat-interval (%s) must be between 100ms and 1m0s", c.RepeatInterval)
	}
	if c.RepeatMax < 1 || c.RepeatMax > 10000 {
		return fmt.Errorf("agreement: --vote-repeat-max (%d) must be between 1 and 10000", c.RepeatMax)
	}
	if c.RecheckInterval < 100*time.Millisecond || c.RecheckInterval > time.Minute {
		return fmt.Errorf("agreement: --peer-recheck-interval (%s) must be between 100ms and 1m0s", c.RecheckInterval)
	}
	if c.Delivery != DeliveryCoordinator && c.Delivery != DeliveryGossip {
		return fmt.Errorf("agreement: --vote-delivery (%q) must be %q or %q", c.Delivery, DeliveryCoordinator, DeliveryGossip)
	}
	return nil
}

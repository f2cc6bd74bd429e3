package evict

import (
	"flag"
	"fmt"
	"time"
)

// Config tunes the API actions of a failover.
type Config struct {
	// DryRun sends every write with server-side dry-run (DryRun=All): the
	// API server validates, admits and answers as usual, PodDisruptionBudget
	// checks on evictions included, but persists nothing. Reads, logs and
	// metrics (result "dry_run") are as usual; Events are not recorded,
	// since recording them would be a write. Use it to watch what haagent
	// would do on a live cluster.
	DryRun bool
	// Parallelism bounds the concurrent pod requests (status patches,
	// evictions, deletions) of one call. Higher finishes a node with many
	// pods sooner; each request in flight counts against the client's QPS
	// and burst and the API server's fairness budget.
	Parallelism int
	// MaxPodsPerNode caps the evictions that one EvictPods call requests.
	// Pods over the cap are reported deferred and are evicted by a later
	// call, since evicted pods are then terminating and skipped. It bounds
	// the damage of a wrong decision at the price of a slower failover of a
	// node with more pods than the cap.
	MaxPodsPerNode int
	// EvictionGracePeriod is the grace period of each eviction, in whole
	// seconds; 0 means the pod's own terminationGracePeriodSeconds. On a dead
	// node the pod stays Terminating whatever it is (no kubelet finishes
	// it), and its controller replaces it at once; on a node that is alive
	// after all, it is the time the pod gets to shut down.
	EvictionGracePeriod time.Duration
}

// DefaultConfig returns the configuration used when no flag is given.
func DefaultConfig() Config {
	return Config{
		Parallelism:         8,
		MaxPodsPerNode:      500,
		EvictionGracePeriod: 30 * time.Second,
	}
}

// RegisterFlags binds the configuration to command-line flags, with the
// names that Validate uses in its messages.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.DryRun, "evict-dry-run", c.DryRun, "send every failover write as a server-side dry run: nothing is changed")
	fs.IntVar(&c.Parallelism, "evict-parallelism", c.Parallelism, "concurrent pod requests of one failover action")
	fs.IntVar(&c.MaxPodsPerNode, "evict-max-pods-per-node", c.MaxPodsPerNode, "most evictions requested per node in one pass; the rest wait for the next pass")
	fs.DurationVar(&c.EvictionGracePeriod, "eviction-grace-period", c.EvictionGracePeriod, "grace period of evictions, whole seconds (0: the pod's own)")
}

// Validate names the flag and the bound.
func (c Config) Validate() error {
	if c.Parallelism < 1 || c.Parallelism > 64 {
		return fmt.Errorf("evict: --evict-parallelism (%d) must be between 1 and 64", c.Parallelism)
	}
	if c.MaxPodsPerNode < 1 || c.MaxPodsPerNode > 10000 {
		return fmt.Errorf("evict: --evict-max-pods-per-node (%d) must be between 1 and 10000", c.MaxPodsPerNode)
	}
	if c.EvictionGracePeriod < 0 || c.EvictionGracePeriod > time.Hour {
		return fmt.Errorf("evict: --eviction-grace-period (%s) must be between 0s and 1h0m0s", c.EvictionGracePeriod)
	}
	if c.EvictionGracePeriod%time.Second != 0 {
		return fmt.Errorf("evict: --eviction-grace-period (%s) must be a whole number of seconds", c.EvictionGracePeriod)
	}
	return nil
}

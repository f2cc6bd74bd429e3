package gossip

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/haagent/haagent/internal/periodic"
)

// joinLoop joins the seeds at start, retrying with backoff until the first
// success, then every RejoinInterval (±25 %) joins any seed peer that is not
// an alive member, which merges the two sides of a healed partition.
func (m *Membership) joinLoop(ctx context.Context) {
	if m.seeds == nil {
		m.ready.Store(true)
		return
	}
	backoff := 500 * time.Millisecond
	maxBackoff := m.cfg.RejoinInterval
	if maxBackoff == 0 {
		maxBackoff = 30 * time.Second
	}
	for !m.joinRound(ctx) {
		m.ready.Store(true)
		t := m.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		backoff = min(backoff*2, maxBackoff)
	}
	m.ready.Store(true)
	if m.cfg.RejoinInterval == 0 {
		return
	}
	// Jittered so that the agents of a DaemonSet do not rejoin in the same
	// instant.
	err := periodic.Every(ctx, m.clock, m.cfg.RejoinInterval, rejoinJitter, func(ctx context.Context) { m.joinRound(ctx) })
	if err != nil {
		m.log.Error("rejoin not running", zap.Error(err))
	}
}

// rejoinJitter spreads the rejoin rounds by ±25 %.
const rejoinJitter = 0.25

// maxJoinPerRound bounds one rejoin round, so a list of dead seeds cannot
// hold the loop for long.
const maxJoinPerRound = 3

// repairEvery is how many rejoin rounds, on average, one repair exchange
// with a peer already seen takes in a group of n: 1 up to 32 members, then
// one more for each doubling, as memberlist scales its push-pull interval
// (for example 5 at 500 members, 6 at 1000).
func repairEvery(n int) int {
	const threshold = 32
	if n <= threshold {
		return 1
	}
	return int(math.Ceil(math.Log2(float64(n))-math.Log2(threshold))) + 1
}

// repairRounds is how many rejoin rounds, on average, one repair exchange
// takes in a group of n: repairEvery(n), times the push/pull interval in
// rejoin intervals (rounded up) when it is the longer. With a push/pull
// base longer than the rejoin interval, as the auto profile's upper bands
// have, the repair exchanges would otherwise cost more than memberlist's
// own push/pulls (at 5000 members and 60 s, twice as much).
func repairRounds(n int, pushPull, rejoin time.Duration) int {
	k := repairEvery(n)
	if rejoin > 0 && pushPull > rejoin {
		k *= int((pushPull + rejoin - 1) / rejoin)
	}
	return k
}

// joinRound asks the seeds for peers and joins those not seen alive. It
// reports true when this member is part of a group afterwards, or when
// there is nobody else to join.
func (m *Membership) joinRound(ctx context.Context) bool {
	peers, err := m.seeds.Peers(ctx)
	if err != nil {
		m.metrics.joins.WithLabelValues("failure").Inc()
		m.log.Warn("discover peers", zap.Error(err))
		return false
	}
	known := map[string]bool{m.LocalAddr(): true}
	for _, mem := range m.Members() {
		if mem.State == StateAlive || mem.State == StateSuspect {
			known[mem.Addr] = true
		}
	}
	var todo, seen []string
	for _, p := range peers {
		switch {
		case !known[p]:
			todo = append(todo, p)
		case p != m.LocalAddr():
			seen = append(seen, p)
		}
	}
	rand.Shuffle(len(todo), func(i, j int) { todo[i], todo[j] = todo[j], todo[i] })
	if len(todo) > maxJoinPerRound {
		todo = todo[:maxJoinPerRound]
	}
	// One state exchange with a peer we already see, too: it repairs
	// views that gossip left apart, such as a member that came back at a
	// new address while some peers still held the old one. A state
	// exchange costs O(N) bytes, so in a large group it is made only in one
	// round of repairEvery(N), as memberlist spaces out its own push-pulls:
	// otherwise it would cost the group O(N²) every RejoinInterval.
	if len(seen) > 0 && rand.N(repairRounds(len(known), m.timing.PushPullInterval, m.cfg.RejoinInterval)) == 0 {
		todo = append(todo, seen[rand.N(len(seen))])
	}
	if len(todo) == 0 {
		return true
	}
	ml := m.ml.Load()
	var wg sync.WaitGroup
	var ok atomic.Int32
	for _, addr := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if n, err := ml.Join([]string{addr}); n > 0 {
				ok.Add(1)
				m.metrics.joins.WithLabelValues("success").Inc()
			} else {
				m.metrics.joins.WithLabelValues("failure").Inc()
				m.log.Debug("join peer", zap.String("peer", addr), zap.Error(err))
			}
		}()
	}
	wg.Wait()
	if ok.Load() > 0 {
		m.log.Debug("joined peers", zap.Int("joined", int(ok.Load())), zap.Int("tried", len(todo)))
		return true
	}
	// Already in a group with other members: a seed that is down does not
	// make us alone.
	return m.alive.Load() > 1
}

package main

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/haagent/haagent/agent/gossip"
)

// Views of one member about another, as the recorder follows them.
const (
	viewUnknown int8 = iota
	viewAlive
	viewSuspect
	viewDead
	viewLeft
)

// maxFalseSamples bounds the false suspicions kept one by one.
const maxFalseSamples = 500

// falseCounts are membership events about members that are alive; of
// them, OfStalled* are about members that had stalled in the run (see
// -stalls) before the event.
type falseCounts struct {
	Suspect          int `json:"suspect_events"`
	Dead             int `json:"dead_events"`
	OfStalledSuspect int `json:"suspect_events_of_stalled_members,omitempty"`
	OfStalledDead    int `json:"dead_events_of_stalled_members,omitempty"`
}

// falseEvent is one of them.
type falseEvent struct {
	Phase    string  `json:"phase"`
	Observer string  `json:"observer"`
	Target   string  `json:"target"`
	Type     string  `json:"type"`
	AtS      float64 `json:"at_seconds"` // since the run started
	Stalled  bool    `json:"target_had_stalled,omitempty"`
}

// recorder follows every member's membership events: who sees whom, when
// each survivor saw each crashed member dead, and every suspicion or death
// of a member that is alive.
type recorder struct {
	start time.Time

	mu        sync.Mutex
	view      [][]int8 // [observer][target]
	known     []int    // per observer: members it sees alive or suspect, itself included
	crashAt   []time.Time
	stalled   []bool                  // members that have stalled in the run
	deadAfter map[int][]time.Duration // crashed member -> each survivor's delay to see it dead
	// deadBefore counts, per crashed member, the survivors that had
	// declared it dead before it crashed.
	deadBefore map[int]int
	deadBy     map[int]map[int]bool // crashed member -> survivors that saw it dead
	phase      string
	falses     map[string]*falseCounts
	samples    []falseEvent
}

func newRecorder(n int) *recorder {
	r := &recorder{
		start:      time.Now(),
		view:       make([][]int8, n),
		known:      make([]int, n),
		crashAt:    make([]time.Time, n),
		stalled:    make([]bool, n),
		deadAfter:  map[int][]time.Duration{},
		deadBefore: map[int]int{},
		deadBy:     map[int]map[int]bool{},
		phase:      phaseConverge,
		falses:     map[string]*falseCounts{},
	}
	for i := range r.view {
		r.view[i] = make([]int8, n)
	}
	return r
}

// follow records the events of observer obs until its subscription closes.
func (r *recorder) follow(obs int, sub *gossip.Subscription) {
	go func() {
		for e := range sub.C {
			r.event(obs, e)
		}
	}()
}

func memberIndex(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, "sim-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

func (r *recorder) event(obs int, e gossip.Event) {
	var v int8
	switch e.Type {
	case gossip.EventAlive:
		v = viewAlive
	case gossip.EventSuspect:
		v = viewSuspect
	case gossip.EventDead:
		v = viewDead
	case gossip.EventLeft:
		v = viewLeft
	default:
		return
	}
	t, ok := memberIndex(e.Member.Name)
	if !ok || t >= len(r.view) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.crashAt[obs].IsZero() {
		return // a crashed member is cut off: what it thinks no longer counts
	}
	old := r.view[obs][t]
	r.view[obs][t] = v
	if isKnown(old) != isKnown(v) {
		if isKnown(v) {
			r.known[obs]++
		} else {
			r.known[obs]--
		}
	}
	if obs == t {
		return
	}
	if at := r.crashAt[t]; !at.IsZero() && !e.Time.Before(at) {
		if v == viewDead && r.firstDead(obs, t) {
			r.deadAfter[t] = append(r.deadAfter[t], e.Time.Sub(at))
		}
		return
	}
	if at := r.crashAt[t]; !at.IsZero() && v == viewDead && r.firstDead(obs, t) {
		// Declared dead before it crashed, while it was alive: a false
		// death that the crash then made true. That survivor saw it dead
		// at once.
		r.deadAfter[t] = append(r.deadAfter[t], 0)
		r.deadBefore[t]++
	}
	if v != viewSuspect && v != viewDead {
		return
	}
	c := r.falses[r.phase]
	if c == nil {
		c = &falseCounts{}
		r.falses[r.phase] = c
	}
	typ := "suspect"
	stalled := r.stalled[t]
	if v == viewDead {
		c.Dead++
		typ = "dead"
		if stalled {
			c.OfStalledDead++
		}
	} else {
		c.Suspect++
		if stalled {
			c.OfStalledSuspect++
		}
	}
	if len(r.samples) < maxFalseSamples {
		r.samples = append(r.samples, falseEvent{Phase: r.phase, Observer: memberName(obs), Target: e.Member.Name,
			Type: typ, AtS: e.Time.Sub(r.start).Seconds(), Stalled: stalled})
	}
}

// firstDead reports whether this is the first time obs declares the
// crashed member t dead: a survivor may see it dead, then alive again (an
// older refutation still travelling), then dead; only the first counts.
func (r *recorder) firstDead(obs, t int) bool {
	seen := r.deadBy[t]
	if seen == nil {
		seen = map[int]bool{}
		r.deadBy[t] = seen
	}
	if seen[obs] {
		return false
	}
	seen[obs] = true
	return true
}

func isKnown(v int8) bool { return v == viewAlive || v == viewSuspect }

func (r *recorder) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

func (r *recorder) crashed(idx int, at time.Time) {
	r.mu.Lock()
	r.crashAt[idx] = at
	r.mu.Unlock()
}

// stalledNow notes that member idx stalls.
func (r *recorder) stalledNow(idx int) {
	r.mu.Lock()
	r.stalled[idx] = true
	r.mu.Unlock()
}

func (r *recorder) isCrashed(idx int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.crashAt[idx].IsZero()
}

// crashTime is when the named member crashed, if it did.
func (r *recorder) crashTime(name string) (time.Time, bool) {
	i, ok := memberIndex(name)
	if !ok || i >= len(r.crashAt) {
		return time.Time{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.crashAt[i], !r.crashAt[i].IsZero()
}

// knownBy is how many members observer obs sees alive or suspect.
func (r *recorder) knownBy(obs int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.known[obs]
}

// minKnown is the smallest view among the first count members.
func (r *recorder) minKnown(count int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	least := -1
	for _, k := range r.known[:count] {
		if least < 0 || k < least {
			least = k
		}
	}
	return least
}

// fullViews is how many of the first count members see all of them.
func (r *recorder) fullViews(count int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := 0
	for _, k := range r.known[:count] {
		if k >= count {
			full++
		}
	}
	return full
}

// deadSeen is how many survivors have seen crashed member idx dead.
func (r *recorder) deadSeen(idx int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.deadAfter[idx])
}

// deadBeforeCrash is how many survivors had declared idx dead before it
// crashed.
func (r *recorder) deadBeforeCrash(idx int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deadBefore[idx]
}

// deadLatencies are the survivors' delays to see idx dead, shortest first.
func (r *recorder) deadLatencies(idx int) []time.Duration {
	r.mu.Lock()
	out := append([]time.Duration(nil), r.deadAfter[idx]...)
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// falseByPhase returns the counts of false suspicions and deaths per phase.
func (r *recorder) falseByPhase() (map[string]falseCounts, []falseEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]falseCounts{}
	for p, c := range r.falses {
		out[p] = *c
	}
	return out, append([]falseEvent(nil), r.samples...)
}

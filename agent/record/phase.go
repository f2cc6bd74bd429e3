package record

// Phases returns every phase in forward order, the final ones (Completed,
// Aborted, Failed) last and PhaseFailed last of all.
func Phases() []Phase {
	return []Phase{
		PhaseConfirmed, PhaseCordoned, PhaseTainted, PhasePodsNotReady,
		PhaseEvicting, PhaseAwaitingFence, PhaseFenced, PhaseRecovering,
		PhaseRecovered, PhaseNodeReturned, PhaseCompleted, PhaseAborted, PhaseFailed,
	}
}

// rank is the position of p in the forward order: 0 for the empty phase of
// a new record, -1 for an unknown phase. Failed ranks after everything.
func (p Phase) rank() int {
	if p == "" {
		return 0
	}
	for i, q := range Phases() {
		if p == q {
			return i + 1
		}
	}
	return -1
}

// Valid reports whether p is one of the defined phases.
func (p Phase) Valid() bool { return p.rank() > 0 }

// Final reports whether p is Completed, Aborted or Failed: nothing follows
// it.
func (p Phase) Final() bool { return p == PhaseCompleted || p == PhaseAborted || p == PhaseFailed }

// Advance moves the failover to phase to. Moving to the current phase is a
// no-op, so that a coordinator that resumes a half-done failover can replay
// its steps. Phases may be skipped but never revisited; Aborted and Failed
// may follow any phase that is not final, and nothing follows a final phase.
// A refused move returns a *PhaseError and leaves s unchanged.
//
// Reaching Completed or Aborted sets the outcome to completed or aborted
// unless it is dry-run; reaching Failed sets it to failed.
func (s *NodeFailoverStatus) Advance(to Phase) error {
	from := s.Phase
	switch {
	case !to.Valid():
		return &PhaseError{From: from, To: to, Err: ErrUnknownPhase}
	case from.rank() < 0:
		return &PhaseError{From: from, To: to, Err: ErrUnknownPhase}
	case to == from:
		return nil
	case from.Final():
		return &PhaseError{From: from, To: to, Err: ErrPhaseOrder}
	case to.rank() < from.rank():
		return &PhaseError{From: from, To: to, Err: ErrPhaseOrder}
	}
	s.Phase = to
	switch {
	case to == PhaseCompleted && s.Outcome != OutcomeDryRun:
		s.Outcome = OutcomeCompleted
	case to == PhaseAborted && s.Outcome != OutcomeDryRun:
		s.Outcome = OutcomeAborted
	case to == PhaseFailed:
		s.Outcome = OutcomeFailed
	}
	return nil
}

// laterPhase returns whichever of a and b is further along; a on a tie or
// when neither is known.
func laterPhase(a, b Phase) Phase {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

package record

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is. Store errors are *Error values that
// match one of these and also wrap the API error.
var (
	// ErrNotFound: the record does not exist (HTTP 404).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a record of that name exists already (HTTP 409 on
	// create).
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: the record changed since it was read (HTTP 409 on
	// update). Get it again, Merge the status into it, and retry.
	ErrConflict = errors.New("conflict: the record changed since it was read")
	// ErrPending: the write failed with a retryable error and is queued;
	// Flush will retry it. Nothing is lost.
	ErrPending = errors.New("queued for retry")

	// ErrPhaseOrder: Advance was asked to go backwards or past a final
	// phase.
	ErrPhaseOrder = errors.New("phases only move forward")
	// ErrUnknownPhase: a phase that is not one of Phases.
	ErrUnknownPhase = errors.New("unknown phase")
)

// Error is a failed Store operation.
type Error struct {
	// Op is the operation: "create", "get", "list", "update",
	// "update status", "flush".
	Op string
	// Name is the record's name; empty for list.
	Name string
	// Kind is one of the sentinel errors, or nil for any other failure.
	Kind error
	// Err is the underlying error, usually from the API.
	Err error
}

func (e *Error) Error() string {
	target := "nodefailovers"
	if e.Name != "" {
		target = "nodefailover " + e.Name
	}
	msg := fmt.Sprintf("record: %s %s", e.Op, target)
	if e.Kind != nil {
		msg += ": " + e.Kind.Error()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause, so that errors.Is matches
// both ErrConflict and, say, apierrors.IsConflict.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// PhaseError is a phase change that Advance refused.
type PhaseError struct {
	From, To Phase
	// Err is ErrPhaseOrder or ErrUnknownPhase.
	Err error
}

func (e *PhaseError) Error() string {
	return fmt.Sprintf("record: cannot advance from phase %q to %q: %v", e.From, e.To, e.Err)
}

func (e *PhaseError) Unwrap() error { return e.Err }

// Package periodic runs a function once a period until a context ends: the
// one shape of the agent's periodic loops.
//
// Every waits a period before the first call, as a ticker does. With a
// jitter, each wait is drawn afresh around the period, so that the agents
// of a DaemonSet, started in the same instant by a rollout, do not keep
// acting in the same instant (memberlist staggers its own loops for the
// same reason). Without one, the calls keep the exact cadence of a ticker:
// that is for loops whose period is a deadline of their own or tied to
// another component's timing, and the caller says so where it calls.
//
// Every reads time only from the clock it is given, so tests step a fake
// clock (k8s.io/utils/clock/testing). It starts no goroutine: it returns
// when the context ends and the call under way has returned.
package periodic

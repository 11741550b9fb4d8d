package identity

import (
	"time"

	"github.com/tessera-cdp/tessera/topology"
)

// SetSweepBudget sets how long one sweep may run, and returns what
// restores it: 0 makes each sweep visit one slice of profiles.
func SetSweepBudget(d time.Duration) (restore func()) {
	old := sweepBudget
	sweepBudget = d
	return func() { sweepBudget = old }
}

// SetBacklog makes every task report n records waiting, and returns what
// restores the real backlog.
func SetBacklog(n int64) (restore func()) {
	old := backlogOf
	backlogOf = func(*topology.Context) int64 { return n }
	return func() { backlogOf = old }
}

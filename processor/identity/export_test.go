package identity

import "time"

// SetSweepBudget sets how long one sweep may run, and returns what
// restores it: 0 makes each sweep visit one slice of profiles.
func SetSweepBudget(d time.Duration) (restore func()) {
	old := sweepBudget
	sweepBudget = d
	return func() { sweepBudget = old }
}

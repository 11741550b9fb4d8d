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

// RecordTimeline returns what a profiles store value says of its
// timeline: the count, whether it is exact, and the newest entry's time.
func RecordTimeline(v []byte) (count int, exact bool, newest int64, err error) {
	r, err := decodeRecord(v, nil)
	if err != nil {
		return 0, false, 0, err
	}
	return r.Timeline, r.TimelineExact, r.TimelineNewest, nil
}

// SetRecountEvery sets how many trims of an exact timeline count there
// are to one that counts again, and returns what restores it.
func SetRecountEvery(n int64) (restore func()) {
	old := recountEvery
	recountEvery = n
	return func() { recountEvery = old }
}

// BumpTimelineCount adds n to the timeline count of a profiles store
// value, as an at-least-once crash that restored the record's changelog
// write of a cycle without the timeline's would.
func BumpTimelineCount(v []byte, n int) ([]byte, error) {
	r, err := decodeRecord(v, nil)
	if err != nil {
		return nil, err
	}
	r.Timeline += n
	return r.encode(), nil
}

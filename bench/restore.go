package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// restore wipes the stopped hub's state directory, starts it again, and
// measures how fast it restores its stores from the changelogs.
//
// Two measures of time, because at this size the fixed costs of a start
// (the process, the topic checks, loading the definitions, joining the
// group) are a visible share: the restore phase proper, as the engine
// times it (tessera_restore_active_seconds_total: the wall time during
// which at least one task restored), and the end-to-end time from starting
// the process to /readyz answering 200. The hub's CPU time over the latter
// varies less than either when other processes share the cores.
func (h *harness) restore(ctx context.Context, res *Result) error {
	if err := os.RemoveAll(h.stateDir()); err != nil {
		return fmt.Errorf("wiping the hub's state: %w", err)
	}
	if err := h.startHub(ctx); err != nil {
		return err
	}
	// The hub serves pprof before it restores (startHub returns once
	// its HTTP API listens, which starts after pprof).
	profiled := h.startCPUProfile(true)
	if err := h.waitReady(ctx, nil); err != nil {
		return err
	}
	ready := time.Since(h.hubStart)
	u, err := processUsage(h.hub.pid())
	if err != nil {
		return err
	}
	m, err := h.scrape()
	if err != nil {
		return err
	}
	rss, err := peakRSS(h.hub.pid())
	if err != nil {
		return err
	}
	res.RSSPeakBytes = max(res.RSSPeakBytes, rss)
	res.RestoreRecords = int64(m.sum("tessera_restore_records_total", "", ""))
	res.RestoreBytes = int64(m.sum("tessera_restore_bytes_total", "", ""))
	res.RestoreReadySeconds = ready.Seconds()
	res.RestoreCPUSeconds = u.CPU.Seconds()
	res.MinorFaults = u.MinorFaults
	res.RestoreReadyRecordsPerSec = float64(res.RestoreRecords) / res.RestoreReadySeconds
	res.RestoreSeconds = m.sum("tessera_restore_active_seconds_total", "", "")
	if res.RestoreSeconds <= 0 {
		// A hub without the metric, or nothing to restore: the
		// end-to-end time is all there is.
		res.RestoreSeconds = res.RestoreReadySeconds
	}
	res.RestoreRecordsPerSec = float64(res.RestoreRecords) / res.RestoreSeconds
	res.RestoreBytesPerSec = float64(res.RestoreBytes) / res.RestoreSeconds
	h.progress("restored %d changelog records (%d MB) in %.2fs: %.0f records/s, %.0f MB/s; %.2fs from start to ready (%.0f records/s end to end)",
		res.RestoreRecords, res.RestoreBytes>>20, res.RestoreSeconds, res.RestoreRecordsPerSec, res.RestoreBytesPerSec/(1<<20),
		res.RestoreReadySeconds, res.RestoreReadyRecordsPerSec)
	if err := <-profiled; err != nil {
		return err
	}
	if err := h.hub.stop(time.Minute); err != nil {
		return err
	}
	h.hub = nil
	return nil
}

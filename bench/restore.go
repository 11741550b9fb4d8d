package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// restore wipes the stopped hub's state directory, starts it again, and
// measures how fast it restores its stores from the changelogs.
func (h *harness) restore(ctx context.Context, res *Result) error {
	if err := os.RemoveAll(h.stateDir()); err != nil {
		return fmt.Errorf("wiping the hub's state: %w", err)
	}
	if err := h.startHub(ctx); err != nil {
		return err
	}
	// Restoring starts once the hub has joined the group; the first
	// poll that sees a task restoring (or records restored) marks it.
	var began time.Time
	watch := func() {
		if !began.IsZero() {
			return
		}
		m, err := h.scrape(map[string]string{
			"tessera_tasks":                 `state="restoring"`,
			"tessera_restore_records_total": "",
		})
		if err == nil && (m["tessera_tasks"] > 0 || m["tessera_restore_records_total"] > 0) {
			began = time.Now()
		}
	}
	if err := h.waitReady(ctx, watch); err != nil {
		return err
	}
	ready := time.Now()
	if began.IsZero() {
		began = h.hubStart // restored between two polls
	}
	m, err := h.scrape(map[string]string{"tessera_restore_records_total": ""})
	if err != nil {
		return err
	}
	rss, err := peakRSS(h.hub.pid())
	if err != nil {
		return err
	}
	res.RSSPeakBytes = max(res.RSSPeakBytes, rss)
	res.RestoreRecords = int64(m["tessera_restore_records_total"])
	res.RestoreSeconds = max(ready.Sub(began).Seconds(), 0.001)
	res.RestoreRecordsPerSec = float64(res.RestoreRecords) / res.RestoreSeconds
	h.progress("restored %d changelog records in %.2fs (%.0f/s); %.2fs from start to ready",
		res.RestoreRecords, res.RestoreSeconds, res.RestoreRecordsPerSec, ready.Sub(h.hubStart).Seconds())
	if err := h.hub.stop(time.Minute); err != nil {
		return err
	}
	h.hub = nil
	return nil
}

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// throughput fills the events topic, runs the baseline over it, then the
// hub, and measures the hub from readiness to caught up.
func (h *harness) throughput(ctx context.Context, res *Result) error {
	gen, err := NewGenerator(h.o.Workload, h.run)
	if err != nil {
		return err
	}
	if res.EventBytes, err = h.prefill(ctx, gen); err != nil {
		return err
	}
	res.Events, res.Profiles = int64(h.o.Events), gen.Customers()
	if err := h.baseline(ctx, res); err != nil {
		return err
	}

	if err := h.startHub(ctx); err != nil {
		return err
	}
	if err := h.waitReady(ctx, nil); err != nil {
		return err
	}
	t0 := time.Now()
	h.progress("hub ready after %s; processing", t0.Sub(h.hubStart).Round(time.Millisecond))
	profiled := h.startCPUProfile(h.o.Mode == Throughput)
	t1, err := h.waitCaughtUp(ctx)
	if err != nil {
		return err
	}
	u, err := h.readHub(res)
	if err != nil {
		return err
	}
	if res.Activations, err = h.topicRecords(ctx, h.topics.Activations); err != nil {
		return err
	}
	logged, err := h.changelogOffsets(ctx)
	if err != nil {
		return err
	}
	res.ChangelogOffsetsPerEvent = float64(logged) / float64(max(res.Events, 1))
	res.Seconds = max(t1.Sub(t0).Seconds(), 0.001)
	res.EventsPerSec = float64(res.Events) / res.Seconds
	res.CPUSeconds = u.CPU.Seconds()
	res.MinorFaults = u.MinorFaults
	setHeap(res, usage{}, u, res.Events)
	res.EventsPerCoreSec = float64(res.Events) / max(res.CPUSeconds, 0.01)
	if res.BaselineEventsPerCoreSec > 0 {
		res.OverheadRatio = res.BaselineEventsPerCoreSec / res.EventsPerCoreSec
	}
	h.progress("processed %d events in %.2fs (%.0f/s), %.2f CPU s (%.0f per core-second)",
		res.Events, res.Seconds, res.EventsPerSec, res.CPUSeconds, res.EventsPerCoreSec)
	if err := <-profiled; err != nil {
		return err
	}

	// Disk after a clean stop: stores closed, memtables flushed.
	if err := h.hub.stop(time.Minute); err != nil {
		return err
	}
	h.hub = nil
	size, err := dirSize(h.stateDir())
	if err != nil {
		return err
	}
	res.DiskBytesPerProfile = float64(size) / float64(max(res.Profiles, 1))
	return nil
}

// startCPUProfile fetches the hub's CPU profile over the next
// ProfileSeconds into CPUProfile, if asked and if measured says that the
// phase starting is the one the mode measures (restore mode processes
// first, and profiles the restart); the channel yields the outcome.
func (h *harness) startCPUProfile(measured bool) <-chan error {
	done := make(chan error, 1)
	if h.o.CPUProfile == "" || !measured {
		done <- nil
		return done
	}
	go func() {
		done <- func() error {
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", h.o.Pprof, h.o.ProfileSeconds))
			if err != nil {
				return fmt.Errorf("fetching the hub's CPU profile: %w", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("fetching the hub's CPU profile: %s", resp.Status)
			}
			f, err := os.Create(h.o.CPUProfile)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return fmt.Errorf("writing %s: %w", h.o.CPUProfile, err)
			}
			h.progress("CPU profile written to %s", h.o.CPUProfile)
			return f.Close()
		}()
	}()
	return done
}

// topicRecords returns the records of topic (topicOffsets).
func (h *harness) topicRecords(ctx context.Context, topic string) (int64, error) {
	return topicOffsets(ctx, h.adm, topic)
}

// topicOffsets returns the sum over topic's partitions of end minus start
// offset: its records, and for a transactional topic its commit markers
// too, so an upper bound of the records.
func topicOffsets(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	var n int64
	for _, ps := range ends {
		for p, e := range ps {
			s, _ := starts.Lookup(e.Topic, p)
			n += e.Offset - s.Offset
		}
	}
	return n, nil
}

// changelogOffsets sums topicOffsets over the hub's changelog topics.
func (h *harness) changelogOffsets(ctx context.Context) (int64, error) {
	return ChangelogOffsets(ctx, h.adm, h.app)
}

// ChangelogOffsets sums, over the changelog topics of application app,
// end minus start offset of each partition: the store writes the
// application logged, plus under exactly-once a transaction marker per
// changelog partition and commit.
func ChangelogOffsets(ctx context.Context, adm *kadm.Client, app string) (int64, error) {
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing topics: %w", err)
	}
	var n int64
	for _, t := range topics.Names() {
		if !strings.HasPrefix(t, app+".") || !strings.HasSuffix(t, "-changelog") {
			continue
		}
		c, err := topicOffsets(ctx, adm, t)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// baseline runs the bare consume→produce loop over the events topic in
// its own process and records its per-core rate.
func (h *harness) baseline(ctx context.Context, res *Result) error {
	out := h.app + ".bench-baseline"
	if err := h.createTopic(ctx, out); err != nil {
		return err
	}
	args := []string{"bench-baseline", "--brokers", strings.Join(h.brokers, ","), "--from", h.topics.Events,
		"--to", out, "--group", h.app + "-baseline", "--records", strconv.Itoa(h.o.Events),
		"--exactly-once=" + strconv.FormatBool(h.o.Guarantee == "exactly_once")}
	c, err := startChild(h.exe, h.dir, "baseline", nil, args...)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	if err := c.wait(wctx); err != nil {
		_ = c.stop(time.Second)
		return err
	}
	var br BaselineResult
	line, _ := strings.CutPrefix(c.output(), "baseline: ")
	if err := json.Unmarshal([]byte(line), &br); err != nil {
		return fmt.Errorf("reading the baseline's result %q: %w", c.output(), err)
	}
	cpu := c.cpuTime().Seconds()
	res.BaselineSeconds = br.Seconds
	res.BaselineEventsPerCoreSec = float64(br.Records) / max(cpu, 0.01)
	h.progress("baseline copied %d records in %.2fs with %.2f CPU s (%.0f per core-second)",
		br.Records, br.Seconds, cpu, res.BaselineEventsPerCoreSec)
	return nil
}

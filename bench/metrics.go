package bench

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// scrape reads the hub's /metrics and returns the sum of each metric's
// samples whose labels contain every one of match (`topic="x"`), keyed by
// metric name, and the buckets of the histogram named hist (its _bucket
// series, by upper bound, in the order served: ascending). It reads
// Prometheus's text format, which the hub serves when the request asks
// for nothing else.
func (h *harness) scrape(match map[string]string, hist string) (map[string]float64, []bucket, error) {
	resp, err := http.Get("http://" + h.hubHTTP + "/metrics")
	if err != nil {
		return nil, nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("reading the hub's metrics: %s", resp.Status)
	}
	out := make(map[string]float64)
	var buckets []bucket
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, val := line[:sp], line[sp+1:]
		name, labels, _ := strings.Cut(series, "{")
		want, ok := match[name]
		isBucket := hist != "" && name == hist+"_bucket"
		if !isBucket && (!ok || !strings.Contains(labels, want)) {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the hub's metrics: %q: %w", line, err)
		}
		if !isBucket {
			out[name] += v
			continue
		}
		le, err := strconv.ParseFloat(labelValue(labels, "le"), 64)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the hub's metrics: the bound of %q: %w", line, err)
		}
		buckets = append(buckets, bucket{le: le, count: v})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	return out, buckets, nil
}

// labelValue returns the value of label name in labels (`a="x",b="y"}`),
// empty when it is not there.
func labelValue(labels, name string) string {
	_, rest, ok := strings.Cut(labels, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// bucket is one cumulative bucket of a Prometheus histogram: count
// observations at most le.
type bucket struct{ le, count float64 }

// quantile returns the q-quantile of a histogram's cumulative buckets
// (ascending, +Inf last) as Prometheus's histogram_quantile estimates it:
// linearly within the bucket it falls in, from 0 for the first; the
// largest finite bound when it falls past it. With no observations, 0.
func quantile(q float64, buckets []bucket) float64 {
	if len(buckets) == 0 || buckets[len(buckets)-1].count == 0 {
		return 0
	}
	rank := q * buckets[len(buckets)-1].count
	lo, below := 0.0, 0.0
	for i, b := range buckets {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				if i == 0 {
					return 0
				}
				return buckets[i-1].le
			}
			if b.count == below {
				return b.le
			}
			return lo + (b.le-lo)*(rank-below)/(b.count-below)
		}
		lo, below = b.le, b.count
	}
	return lo
}

// readHub reads what a mode reports of the hub process at its end: its
// usage so far (returned), its peak RSS and the events it processed (set
// in res).
func (h *harness) readHub(res *Result) (usage, error) {
	u, err := processUsage(h.hub.pid())
	if err != nil {
		return usage{}, err
	}
	if res.RSSPeakBytes, err = peakRSS(h.hub.pid()); err != nil {
		return usage{}, err
	}
	m, commits, err := h.scrape(map[string]string{
		"tessera_records_processed_total":      `topic="` + h.topics.Events + `"`,
		"tessera_commit_latency_seconds_sum":   "",
		"tessera_commit_latency_seconds_count": "",
	}, "tessera_commit_latency_seconds")
	if err != nil {
		return usage{}, err
	}
	res.EventsProcessed = int64(m["tessera_records_processed_total"])
	if n := m["tessera_commit_latency_seconds_count"]; n > 0 {
		res.Commits = int64(n)
		res.CommitMSMean = m["tessera_commit_latency_seconds_sum"] / n * 1000
		res.CommitMSP99 = quantile(0.99, commits) * 1000
	}
	return u, nil
}

package bench

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// scrape reads the hub's /metrics and returns the sum of each metric's
// samples whose labels contain every one of match (`topic="x"`), keyed by
// metric name. It reads Prometheus's text format, which the hub serves
// when the request asks for nothing else.
func (h *harness) scrape(match map[string]string) (map[string]float64, error) {
	resp, err := http.Get("http://" + h.hubHTTP + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading the hub's metrics: %s", resp.Status)
	}
	out := make(map[string]float64)
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
		if !ok || !strings.Contains(labels, want) {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("reading the hub's metrics: %q: %w", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the hub's metrics: %w", err)
	}
	return out, nil
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
	m, err := h.scrape(map[string]string{
		"tessera_records_processed_total":      `topic="` + h.topics.Events + `"`,
		"tessera_commit_latency_seconds_sum":   "",
		"tessera_commit_latency_seconds_count": "",
	})
	if err != nil {
		return usage{}, err
	}
	res.EventsProcessed = int64(m["tessera_records_processed_total"])
	if n := m["tessera_commit_latency_seconds_count"]; n > 0 {
		res.Commits = int64(n)
		res.CommitMSMean = m["tessera_commit_latency_seconds_sum"] / n * 1000
	}
	return u, nil
}

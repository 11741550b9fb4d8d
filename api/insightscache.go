package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Limits of GET /v1/insights?max_age.
const (
	// maxInsightsAge is the largest max_age accepted.
	maxInsightsAge = time.Hour
	// insightsTimeout bounds a background refresh.
	insightsTimeout = 2 * time.Minute
)

// insightsCache keeps the newest population insights. Computing them
// scans every profile of every instance (seconds on 100,000 profiles), so
// a page that asks with ?max_age gets the kept ones at once, and a stale
// answer starts one refresh in the background rather than making the
// reader wait for it.
type insightsCache struct {
	// compute serialises computations, so readers arriving together
	// scan once.
	compute sync.Mutex
	// mu guards the fields below.
	mu         sync.Mutex
	val        Insights
	at         time.Time
	ok         bool
	refreshing bool
}

// CachedInsights is the answer of GET /v1/insights?max_age: the insights
// and when they were computed.
type CachedInsights struct {
	Insights
	ComputedAt time.Time `json:"computed_at"`
	// Stale is true when they are older than max_age; a refresh is then
	// under way.
	Stale bool `json:"stale"`
}

// parseMaxAge reads max_age: a Go duration ("60s", "5m") or seconds.
func parseMaxAge(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, fmt.Errorf("max_age must be a duration such as 60s or a number of seconds, got %q", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > maxInsightsAge {
		return 0, fmt.Errorf("max_age must be more than 0 and at most %v, got %q", maxInsightsAge, s)
	}
	return d, nil
}

// cachedInsights answers GET /v1/insights?max_age=…: the kept insights
// if younger than max_age; older ones at once, marked stale, while one
// refresh runs in the background; none yet, computed now.
func (m *Models) cachedInsights(w http.ResponseWriter, r *http.Request) {
	maxAge, err := parseMaxAge(r.URL.Query().Get("max_age"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c := &m.insights
	c.mu.Lock()
	val, at, ok := c.val, c.at, c.ok
	stale := ok && time.Since(at) > maxAge
	if stale && !c.refreshing {
		c.refreshing = true
		go m.refreshInsights()
	}
	c.mu.Unlock()
	if !ok {
		c.compute.Lock()
		defer c.compute.Unlock()
		c.mu.Lock()
		val, at, ok = c.val, c.at, c.ok // another reader may have computed them
		c.mu.Unlock()
		if !ok {
			if val, err = m.gatherInsights(r.Context()); err != nil {
				writeError(w, http.StatusBadGateway, err.Error())
				return
			}
			at = time.Now()
			m.keepInsights(val, at)
		}
	}
	w.Header().Set("Age", strconv.Itoa(int(time.Since(at).Seconds())))
	WriteJSON(w, http.StatusOK, CachedInsights{Insights: val, ComputedAt: at.UTC(), Stale: stale})
}

func (m *Models) keepInsights(v Insights, at time.Time) {
	m.insights.mu.Lock()
	defer m.insights.mu.Unlock()
	m.insights.val, m.insights.at, m.insights.ok = v, at, true
}

// refreshInsights computes the insights again and keeps them; on failure
// the old ones stay and the next stale read tries again.
func (m *Models) refreshInsights() {
	c := &m.insights
	defer func() {
		c.mu.Lock()
		c.refreshing = false
		c.mu.Unlock()
	}()
	c.compute.Lock()
	defer c.compute.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), insightsTimeout)
	defer cancel()
	v, err := m.gatherInsights(ctx)
	if err != nil {
		if m.log != nil {
			m.log.Warn("refreshing the insights", "err", err)
		}
		return
	}
	m.keepInsights(v, time.Now())
}

// WarmInsights computes the insights once this instance is ready (ready
// returns nil: its stores are restored), so the console's first Insights
// page after a start reads them from the cache instead of waiting for a
// scan of every profile. It retries every few seconds until it succeeds
// or ctx ends.
func (m *Models) WarmInsights(ctx context.Context, ready func() error) {
	for {
		err := ready()
		if err == nil {
			m.insights.compute.Lock()
			var v Insights
			if v, err = m.gatherInsights(ctx); err == nil {
				m.keepInsights(v, time.Now())
			}
			m.insights.compute.Unlock()
		}
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

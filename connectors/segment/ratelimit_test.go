package segment

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the handler.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRateLimit: each write key has its own bucket of events; a batch is charged
// its events; over the limit the answer is 429 with Retry-After and nothing is
// written; the bucket refills with time.
func TestRateLimit(t *testing.T) {
	clk := &clock{t: fixedNow}
	e := newEnv(t, func(c *envConfig) {
		c.rateLimit = RateLimit{EventsPerSecond: 10, Burst: 20}
		c.now = clk.now
	})
	track := `{"type":"track","userId":"u1","event":"E"}`
	steps := []struct {
		name       string
		advance    time.Duration
		req        request
		status     int
		retryAfter string // "" when not 429
	}{
		{name: "a batch of 15 fits the burst of 20",
			req: request{path: "/v1/batch", auth: basic(testKey), body: batchOf("", repeatEvents(15, track)...)}, status: 200},
		{name: "a batch of 10 does not fit the 5 left: 1 s to wait",
			req: request{path: "/v1/batch", auth: basic(testKey), body: batchOf("", repeatEvents(10, track)...)}, status: 429, retryAfter: "1"},
		{name: "the refused batch took nothing: 5 single events pass",
			req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
		{req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
		{req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
		{req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
		{req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
		{name: "the bucket is empty",
			req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 429, retryAfter: "1"},
		{name: "the key in the body shares the bucket",
			req: request{path: "/v1/track", body: []byte(`{"userId":"u1","event":"E","writeKey":"` + testKey + `"}`)}, status: 429, retryAfter: "1"},
		{name: "another key has its own bucket",
			req: request{path: "/v1/track", auth: basic("other-key"), body: []byte(track)}, status: 200},
		{name: "a wrong key is 401, not 429",
			req: request{path: "/v1/track", auth: basic("nope"), body: []byte(track)}, status: 401},
		{name: "a batch over the burst is charged the burst: it waits 2 s for a full bucket",
			req: request{path: "/v1/batch", auth: basic(testKey), body: batchOf("", repeatEvents(30, track)...)}, status: 429, retryAfter: "2"},
		{name: "after 2 s the bucket is full again and the big batch passes", advance: 2 * time.Second,
			req: request{path: "/v1/batch", auth: basic(testKey), body: batchOf("", repeatEvents(30, track)...)}, status: 200},
		{name: "and the bucket is empty again",
			req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 429, retryAfter: "1"},
		{name: "100 ms later one event has refilled", advance: 100 * time.Millisecond,
			req: request{path: "/v1/track", auth: basic(testKey), body: []byte(track)}, status: 200},
	}
	start := e.snapshot()
	wantEvents := 0
	for i, s := range steps {
		clk.advance(s.advance)
		resp := e.do(s.req)
		if resp.status != s.status {
			t.Fatalf("step %d (%s): status %d, want %d: %s", i, s.name, resp.status, s.status, resp.raw)
		}
		if got := resp.header.Get("Retry-After"); got != s.retryAfter {
			t.Errorf("step %d (%s): Retry-After %q, want %q", i, s.name, got, s.retryAfter)
		}
		if s.status == 429 && !strings.Contains(resp.json["error"].(string), "rate limit of 10 events per second (burst 20)") {
			t.Errorf("step %d (%s): error %q does not name the limit", i, s.name, resp.json["error"])
		}
		if s.status == 200 {
			wantEvents += strings.Count(string(s.req.body), `"event":"E"`)
		}
	}
	// Refused requests wrote nothing: the topic holds exactly the admitted events.
	if got := len(e.eventsSince(start)); got != wantEvents {
		t.Errorf("tessera.events holds %d records, want %d (refused requests must write nothing)", got, wantEvents)
	}
}

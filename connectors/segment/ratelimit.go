package segment

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is a token bucket per write key: each key may send EventsPerSecond events
// a second on average and Burst at once. A request over its key's limit is answered 429
// with Retry-After and written nowhere, like every request refused as a whole.
type RateLimit struct {
	// EventsPerSecond is the sustained rate per key; 0 turns the limit off.
	EventsPerSecond float64
	// Burst is the bucket's size; below 1 it is EventsPerSecond (at least 1).
	Burst int
}

// keyLimiter holds the bucket of each write key.
type keyLimiter struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	// buckets has one limiter per key seen. INVARIANT: only keys that passed
	// validKey are added, so it holds at most the configured keys (and those removed
	// from the configuration while tessera runs), never one per attacker's guess.
	// REQUIRES: mu.
	buckets map[string]*rate.Limiter
}

// newKeyLimiter returns the limiter of rl, or nil when rl turns limiting off.
func newKeyLimiter(rl RateLimit) *keyLimiter {
	if rl.EventsPerSecond <= 0 {
		return nil
	}
	burst := rl.Burst
	if burst < 1 {
		burst = max(1, int(math.Ceil(rl.EventsPerSecond)))
	}
	return &keyLimiter{limit: rate.Limit(rl.EventsPerSecond), burst: burst, buckets: make(map[string]*rate.Limiter)}
}

// admit charges n events to key at now. It returns 0 if they may pass, else how long
// the sender should wait before trying again; then nothing is charged. A request of
// more events than the burst is charged the burst, so that it waits for a full bucket
// instead of never passing.
func (l *keyLimiter) admit(key string, n int, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	n = min(max(n, 1), l.burst)
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, n)
	if !r.OK() { // cannot happen: n <= burst
		return time.Second
	}
	d := r.DelayFrom(now)
	if d > 0 {
		r.CancelAt(now)
	}
	return d
}

// errRateLimited is the 429 for a key that must wait d, with Retry-After in whole
// seconds (at least 1), as RFC 9110 writes it.
func errRateLimited(w http.ResponseWriter, d time.Duration, l *keyLimiter) *apiError {
	secs := max(1, int(math.Ceil(d.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &apiError{status: http.StatusTooManyRequests, body: errorBody{
		Error: fmt.Sprintf("this write key is over its rate limit of %g events per second (burst %d): retry after %d s",
			float64(l.limit), l.burst, secs),
		Limit: "rate_limit",
		Max:   l.burst,
	}}
}

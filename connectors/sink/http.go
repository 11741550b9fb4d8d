package sink

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// IdempotencyKeyHeader is the HTTP header (and Kafka record header) that
// carries an activation's id, for receivers to deduplicate redeliveries.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxErrorBody is how much of an error response's body an error quotes.
const maxErrorBody = 512

// CheckHTTPResponse classifies the answer of an HTTP receiver, as the HTTP
// sinks share it:
//
//   - 2xx: delivered (nil);
//   - 409 Conflict: delivered; the receiver says it has this idempotency
//     key already;
//   - 429 and 503: retryable, with RetryAfter when the Retry-After header
//     gives seconds or an HTTP date (relative to now);
//   - 408 and other 5xx: retryable;
//   - anything else (other 4xx, an unfollowed 3xx): Permanent.
//
// Errors quote the status and the start of the body, which it reads; the
// caller still closes resp.Body.
func CheckHTTPResponse(resp *http.Response, now time.Time) error {
	code := resp.StatusCode
	if code/100 == 2 || code == http.StatusConflict {
		return nil
	}
	err := fmt.Errorf("HTTP %s%s", resp.Status, bodySnippet(resp.Body))
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return RetryAfter(err, d)
		}
		return err
	case code == http.StatusRequestTimeout || code/100 == 5:
		return err
	default:
		return Permanent(err)
	}
}

// bodySnippet returns ": " and the start of body on one line, or "".
func bodySnippet(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
	for len(b) > 0 && !utf8.Valid(b) {
		b = b[:len(b)-1] // cut inside a rune
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}

// ParseRetryAfter reads a Retry-After header: delay-seconds, or an HTTP
// date, taken relative to now (a date in the past is no wait). It reports
// false when v is empty or neither.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

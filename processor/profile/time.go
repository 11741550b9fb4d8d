package profile

import "time"

// parseMillis parses the normalized event timestamp layout (and RFC 3339
// in general) into Unix ms; 0 when it does not parse.
func parseMillis(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0
	}
	return t.UnixMilli()
}

// ParseMillis is parseMillis for the protocol, which reads event times.
func ParseMillis(s string) int64 { return parseMillis(s) }

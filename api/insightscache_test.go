package api

import (
	"testing"
	"time"
)

func TestParseMaxAge(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"60s", time.Minute, ""},
		{"5m", 5 * time.Minute, ""},
		{"30", 30 * time.Second, ""},
		{"1h", time.Hour, ""},
		{"0", 0, `max_age must be more than 0 and at most 1h0m0s, got "0"`},
		{"2h", 0, `max_age must be more than 0 and at most 1h0m0s, got "2h"`},
		{"-5s", 0, `max_age must be more than 0 and at most 1h0m0s, got "-5s"`},
		{"soon", 0, `max_age must be a duration such as 60s or a number of seconds, got "soon"`},
		{"", 0, `max_age must be a duration such as 60s or a number of seconds, got ""`},
	} {
		got, err := parseMaxAge(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseMaxAge(%q) = %v, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseMaxAge(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

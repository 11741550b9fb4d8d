package bench

import (
	"math"
	"testing"
)

// TestQuantile checks the histogram quantile against hand-computed
// estimates: linear within the bucket the rank falls in, from 0 below the
// first bound, the largest finite bound past it, 0 without observations.
func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 100 observations: 10 at most 1, 60 more up to 2, 20 up to 4, 10
	// past 8.
	h := []bucket{{1, 10}, {2, 70}, {4, 90}, {8, 90}, {inf, 100}}
	for _, tc := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
	}{
		{"in the first bucket, from 0", 0.05, h, 0.5},
		{"in the second", 0.40, h, 1.5},
		{"at a bound", 0.70, h, 2},
		{"in the third", 0.80, h, 3},
		{"past the last finite bound", 0.99, h, 8},
		{"an empty bucket's bound", 0.90, h, 4},
		{"no observations", 0.99, []bucket{{1, 0}, {inf, 0}}, 0},
		{"no buckets", 0.99, nil, 0},
		{"everything past the bounds", 0.5, []bucket{{inf, 5}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantile(tc.q, tc.buckets); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%g) = %g, want %g", tc.q, got, tc.want)
			}
		})
	}
}

// TestLabelValue reads a label out of a series' label text.
func TestLabelValue(t *testing.T) {
	for _, tc := range []struct{ labels, name, want string }{
		{`le="0.0016"}`, "le", "0.0016"},
		{`topic="x",le="+Inf"}`, "le", "+Inf"},
		{`topic="x"}`, "le", ""},
	} {
		if got := labelValue(tc.labels, tc.name); got != tc.want {
			t.Errorf("labelValue(%q, %q) = %q, want %q", tc.labels, tc.name, got, tc.want)
		}
	}
}

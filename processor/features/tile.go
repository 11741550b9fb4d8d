package features

import "time"

const day = 24 * time.Hour

// tileTable maps window lengths to tile sizes: the first row whose limit is
// above the window applies. The table in doc.go is this one; a test keeps
// them in step.
var tileTable = []struct {
	below time.Duration // the row applies to windows shorter than this
	tile  time.Duration
}{
	{10 * time.Minute, 10 * time.Second},
	{time.Hour, time.Minute},
	{6 * time.Hour, 5 * time.Minute},
	{day, 15 * time.Minute},
	{4 * day, time.Hour},
	{15 * day, 4 * time.Hour},
	{90*day + 1, day},
	{365*day + 1, 4 * day},
}

// TileSize returns the tile size of a window: the width of the time buckets
// its feature's partial aggregates are kept in, which is also the step in
// which its value can fall as time passes. A lifetime window (0) has no
// tiles and returns 0; windows beyond 365d, which config.ParseWindow
// refuses, take the largest tile.
func TileSize(window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	for _, r := range tileTable {
		if window < r.below {
			return r.tile
		}
	}
	return tileTable[len(tileTable)-1].tile
}

// alignDown returns the largest multiple of step at or below t.
// REQUIRES: step > 0.
func alignDown(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

// alignUp returns the smallest multiple of step at or above t.
// REQUIRES: step > 0.
func alignUp(t, step int64) int64 {
	d := alignDown(t, step)
	if d == t {
		return t
	}
	return d + step
}

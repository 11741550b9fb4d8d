// Package features computes rolling behavioural features per profile: count,
// sum, min, max, avg, count_distinct, first, last and most_frequent of an
// event (by track name or call type, with an optional filter) or one of its
// properties, over an event-time window (1m … 365d) or the profile's
// lifetime. It knows nothing of Kafka: the profile stage calls Update for
// each event it applies, Values when it needs a profile's features, Expire
// from a stream-time punctuation, and Merge when identity folds one profile
// into another in the same task (Export, Import and Delete when the two live
// in different tasks). Everything it stores lives in one state.Window.
//
// # Files
//
//	doc.go      this note: semantics, the tile table, bounds, layout
//	set.go      Options, Compile, the Set and its operations
//	filter.go   filter expressions (expr-lang/expr) and their environment
//	tile.go     tile sizes and window arithmetic
//	agg.go      per-aggregation tile encodings: apply, merge, read
//	distinct.go count_distinct: exact hash sets, then HyperLogLog
//	value.go    canonical property values and event times
//	metrics.go  Stats and the Prometheus counters
//
// # Windows and tiles
//
// A windowed feature keeps one tile per tile-size bucket of event time; tile
// boundaries are absolute (multiples of the tile size since the Unix epoch),
// so the tiles of two profiles align and Merge folds tile into tile. An
// event updates exactly one tile: the one its timestamp falls in. A read
// combines the tiles wholly inside [now − window, now]:
//
//	value(now) = ⊕ tiles with alignUp(now − window) ≤ start ≤ now
//
// so an event at t counts while alignUp(now − window) ≤ t, which is to say
// an event is never counted once it is older than the window, and always
// for at least window − tile. The window's edge moves in steps of one tile:
// a value falls as time passes with no new event, at tile boundaries.
// lifetime features keep a single running aggregate (one tile at start 0)
// that never expires.
//
// The tile size depends on the window alone (TileSize), chosen so that the
// edge resolution is at most a sixth of the window (a tenth or finer from
// 10m on) and a read touches at most 96 tiles:
//
//	window              tile   tiles per read (at most ⌊window/tile⌋ + 1)
//	1m  ≤ w < 10m       10s    7 (1m) … 55 (9m)
//	10m ≤ w < 1h        1m     11 … 60
//	1h  ≤ w < 6h        5m     13 … 72
//	6h  ≤ w < 1d        15m    25 … 96
//	1d  ≤ w < 4d        1h     25 … 96
//	4d  ≤ w < 15d       4h     25 (4d) … 43 (7d) … 90 (359h)
//	15d ≤ w ≤ 90d       1d     16 … 91
//	90d < w ≤ 365d      4d     23 … 92
//	lifetime            —      1
//
// Only tiles that received an event exist, so a quiet profile reads fewer.
//
// Values reports the state as of now assuming no event later than now has
// been applied; at the stream time, where it is meant to be called, that
// holds. Asked about an earlier moment, it also counts the events later
// than that moment that share its tile.
//
// # Lateness
//
// Update takes the task's stream time. An event older than the stream time
// minus the allowed lateness (Options.AllowedLateness, default 7 days) is
// ignored by every feature and counted (Stats.Late,
// tessera_feature_late_events_total), lifetime ones included, so that
// whether an event counts never depends on which feature asks. An event in
// time updates the tile it falls in, however old that tile is.
//
// # Expiry
//
// Expire(now) deletes, for each windowed feature, the tiles that start
// before alignUp(now − lateness − window). INVARIANT: after Expire(now),
// Values(t) is unchanged for every t ≥ now − lateness, and every event that
// is still in time can find its tile: an accepted event is at least
// now − lateness, so its tile starts at or after the cut-off.
//
// Expire scans a windowed feature's tiles only when the profile may hold
// one before its cut-off. The caller keeps, with each profile, a tile
// floor: a time no event in the profile's windowed tiles is older than.
// INVARIANT: every windowed tile of the profile starts at or after
// alignDown(floor, its tile size). A tile that starts before a cut-off
// holds an event before it (cut-offs are multiples of the tile size), so
// a feature whose cut-off is at or before the floor has nothing to
// expire. UpdateFloor lowers the floor to each event's time, Import
// returns the floor of the tiles it brings (the profile's becomes the
// lower of the two), and Expire raises it to the lowest cut-off of the
// windowed features, past which every feature now starts. A profile
// without tiles has the floor NoTiles; 0 is always safe and scans every
// feature. Most profiles' events are far younger than any cut-off, so an
// expiring sweep passes them by: scanning every profile's tiles took
// 7.5 % of the hub's CPU in `tessera bench`, for nothing to delete.
//
// # Aggregations and their tiles
//
// Every tile starts with a tag byte naming its encoding; a tile whose tag
// does not match its feature is reported as ErrCorruptTile, never misread.
//
//	count          uvarint n. With a property, counts the events where it is present and not null.
//	sum            float64. Empty windows sum to 0.
//	min, max       float64. nil for an empty window.
//	avg            float64 sum, uvarint count; sum/count, nil for an empty window.
//	first, last    varint ms, canonical value: the value of the earliest (latest) event.
//	most_frequent  uvarint decrements, uvarint n, n × (uvarint count, canonical value).
//	count_distinct sorted 64-bit hashes (exact), or a HyperLogLog sketch.
//
// Numeric aggregations take JSON numbers and strings that parse as finite
// numbers ("12.50"); other values are skipped and counted
// (Stats.NotNumeric). The other aggregations take any JSON value but null.
// Properties are read from the event's properties, or its traits for
// identify and group calls; a dotted property names a path into them
// (product.price).
//
// Canonical values order like this: false < true < numbers (numerically)
// < strings (bytewise) < objects and arrays (as compact JSON). first and
// last break ties between events of the same millisecond by that order (the
// smallest value is first, the largest last), and most_frequent breaks ties
// between equal counts by taking the smallest value, so a result never
// depends on arrival order. Numbers are compared as float64, so 1 and 1.0
// are the same value.
//
// sum and avg add float64s; sums of values with exact binary fractions
// (integers, halves, quarters, …) are exact whatever the order, other sums
// may differ from a sequential sum in the last bits.
//
// # count_distinct: exact, then HyperLogLog
//
// Each tile (the lifetime aggregate included) keeps the 64-bit xxhash of
// each distinct canonical value, sorted, up to Options.DistinctExact values
// (default 1,000; 8 KB). Counting hashes is exact up to hash collisions: the
// chance that two of n values collide is n²/2⁶⁵, below 3·10⁻¹⁴ at 1,000 and
// below 10⁻⁹ across a 90-day window of full tiles. A window's value is the
// size of the union of its tiles' sets, exact however large, as long as
// every tile in it is exact; in particular whenever the window holds at
// most DistinctExact distinct values.
//
// When a tile's set would exceed the bound it becomes a HyperLogLog sketch
// (github.com/axiomhq/hyperloglog, LogLog-Beta, precision 14: 16,384
// registers, at most 16 KB, sparse below a few thousand values) fed with the
// same hashes, and a window holding such a tile is estimated from the union
// of all its tiles. The sketch's relative standard error is
// 1.04/√16384 ≈ 0.81 % (HLLStandardError); estimates fall within
// 4σ ≈ 3.25 % (HLLErrorBound) of the true count but for one time in about
// 16,000. While the sketch is sparse (up to about 12,000 distinct values)
// it counts with 2²⁵ buckets and is far tighter than that.
//
// # most_frequent: capped counts
//
// Each tile keeps at most Options.FrequentCap (default 64) values with
// their counts, as a Misra–Gries summary: a new value arriving at a full
// tile decrements every count (dropping those that reach zero) instead of
// being added. The result is exact while no tile of the window saw more
// than FrequentCap distinct values. Beyond that, every value more frequent
// than n/(FrequentCap+1) of a tile's n events is still kept, and its count
// is low by at most the tile's decrements (stored in the tile). Merged
// tiles keep the same guarantee (Agarwal et al., "Mergeable summaries").
//
// # Filters
//
// A filter is an expr-lang/expr expression that must be a bool, compiled
// once. Its names are the event's properties (or traits, as above), plus
// event (the track name, "" for other calls) and type (the call type), which
// hide properties of the same names; those stay reachable as
// properties.event and properties.type. A missing property is nil:
// `revenue > 100` on an event without revenue is a runtime error, which
// counts as no match (Stats.FilterErrors); write `(revenue ?? 0) > 100` or
// `product?.price > 3` to say what absence means. When Options.Properties
// lists an event's properties (from its tracking plan), a filter or
// property naming another one is refused by Compile.
//
// # Store layout
//
// Each feature of each profile is one key of the window store:
//
//	uvarint(len(profile)) profile name 0x00 fingerprint(8)
//
// The fingerprint hashes the definition (event, type, filter, agg,
// property, window and tile size), so a redefined feature starts from
// empty tiles rather than misreading old ones; the old key's tiles are no
// longer read, and windowed ones are not expired either (Expire knows only
// the current definitions). Whoever replaces a definition drops them with
// the old Set's Delete, or leaves them to compaction of a rebuilt store.
//
// # Concurrency
//
// A Set keeps scratch buffers and filter VMs, so Update, Expire, Merge,
// Export, Import and Delete belong to one task goroutine, like the task's
// stores; Clone gives another task its own Set sharing the compiled
// definitions. Values uses none of them and may run on any goroutine, for
// instance the API's on a committed view of the store.
package features

package identity

import "bytes"

// recordCache keeps the decoded records of the profiles a task wrote
// last, each with the encoding it was written as. Decoding a record (its
// sets, traits, identifiers and purchases into fresh maps and strings)
// was about 5 % of the profile stage's CPU in `tessera bench`, for
// records that the task itself had just encoded: a busy profile's next
// op meets the record its last op wrote.
//
// The store stays the truth: a cached record is used only when the
// store's value is byte for byte the encoding it was written as. Any
// other writer (the sweep, an erasure, a restore, an aborted cycle whose
// writes were discarded) leaves a value that differs, and the record is
// decoded afresh. It is one task's, used on its goroutine only.
type recordCache struct {
	max int
	m   map[string]*cachedRecord
}

// cachedRecord is a decoded record and the encoding it was written as.
// INVARIANT: r decodes from raw, or raw is empty (taken, or forgotten),
// which no store value equals.
type cachedRecord struct {
	raw []byte
	r   *record
}

// recordCacheSize bounds a task's cached records: enough for the profiles
// that get most of a task's ops, which in the bench's Zipf workload are
// far fewer (its busiest 1,000 customers of 100,000 send 43 % of the
// events, over 12 tasks).
const recordCacheSize = 1024

func newRecordCache(max int) *recordCache {
	return &recordCache{max: max, m: make(map[string]*cachedRecord)}
}

// take returns the record of profile id if raw, the store's value, is
// what the cache wrote. Either way the entry matches nothing from then on:
// the caller changes the record and gives it back with put once the
// change is stored, and a step that fails does not, so the cache never
// answers with a record that the store does not hold. The entry stays in
// the map, to be reused by put.
func (c *recordCache) take(id string, raw []byte) *record {
	e := c.m[id]
	if e == nil {
		return nil
	}
	match := len(e.raw) > 0 && bytes.Equal(raw, e.raw)
	e.raw = e.raw[:0]
	if !match {
		return nil
	}
	return e.r
}

// put caches r, which the store now holds encoded as raw (copied).
func (c *recordCache) put(id string, r *record, raw []byte) {
	e := c.m[id]
	if e == nil {
		if len(c.m) >= c.max {
			// A random entry, reused: the map's iteration starts anywhere.
			for k, old := range c.m {
				delete(c.m, k)
				e = old
				break
			}
		} else {
			e = &cachedRecord{}
		}
		c.m[id] = e
	}
	e.raw = append(e.raw[:0], raw...)
	e.r = r
}

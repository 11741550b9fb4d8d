package identity

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/valyala/fastjson"
)

// The timeline.
//
// A profile's recent events (Options.RecentEvents of them) live in the
// profile stage's store "timeline", one entry per event, keyed
//
//	uvarint(len(profile id)) + profile id + big-endian(event ms + 2^63) + xxhash64(event)
//
// so a profile's events are contiguous and in time order; the value is the
// event, compressed when that makes it shorter (appendTimelineValue). An
// event is written once, where it was kept inside the profile record before: there,
// every event rewrote up to a hundred others (~110 KB per event at the
// default, in the store and its changelog), which `tessera bench` showed
// as the hub's largest cost.
//
// The record counts its entries (record.Timeline). An event adds one; once
// the count passes the limit by a quarter, the oldest are deleted down to
// the limit, so trimming costs one scan per quarter-limit events rather than
// one per event. A profile thus holds between RecentEvents and 1.25 ×
// RecentEvents events; readers take the newest RecentEvents.
//
// A trim reads only the entries it deletes when the count is exact
// (record.TimelineExact), as it is from a profile's first trim on: the
// store holds exactly record.Timeline entries, none newer than
// record.TimelineNewest. Reading all of them to delete a fifth was 4.5 %
// of the hub's CPU in `tessera bench` at 500,000 events.
// An event newer than every entry has a key of its own, so it adds one; an
// event that is not (late, redelivered, re-imported, or a merged loser's)
// may rewrite an entry, so its key is looked up first (KeyValue.Has), and
// adds one only when absent. Until its first trim a profile's count is an
// upper bound (as is that of a record written before version 8): a
// redelivered event rewrites its entry and counts one all the same, which
// spares the lookups of late events to the many profiles that never reach
// the limit. A trim of such a count reads the whole timeline, deletes the
// oldest down to the limit, and makes it exact.
//
// INVARIANT: with TimelineExact, the timeline store holds exactly Timeline
// entries of the profile and none newer than TimelineNewest, committed
// together with the record in one cycle; except after an at-least-once
// crash, which can restore one store's changelog writes of the cycle
// without the other's: a count ahead of the store makes trims keep fewer
// than the limit, one behind makes them keep more. So that such a count
// does not stay off, one trim in recountEvery, chosen by the newest
// entry's time, reads the whole timeline and counts again.

// timelineSlack is the share of the limit a timeline may grow past it
// before it is trimmed.
const timelineSlack = 4 // a quarter

// recountEvery is how many trims of an exact count there are to one that
// reads the whole timeline and counts again: rare, since only a crash
// puts a count off, and a recount reads five times what a trim does. A
// variable so that tests can choose.
var recountEvery int64 = 32

// noEntries is record.TimelineNewest of an empty timeline.
const noEntries = math.MinInt64

// timelinePrefix returns the key prefix of profile id's events.
func timelinePrefix(id string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(id)))
	return append(b, id...)
}

// timelineKey returns the key of event raw, at ms, of profile id. The
// hash tells apart events of one millisecond and writes a repeated event
// over itself. It was FNV-1a, which hashes a byte at a time: 2.2–2.5 % of
// the hub's CPU in `tessera bench`, for a kilobyte per event. An event
// processed once before and once after that change (a redelivery across
// the upgrade) has two entries.
func timelineKey(id string, at int64, raw []byte) []byte {
	b := binary.BigEndian.AppendUint64(timelinePrefix(id), uint64(at)^(1<<63))
	return binary.BigEndian.AppendUint64(b, xxhash.Sum64(raw))
}

// A timeline value is the event's JSON, or, when that is shorter,
// timelineS2 and the JSON compressed as an S2 block. JSON never starts
// with that byte, so a value written before compression (the JSON as is)
// reads the same. The events are the bulk of what the profile stage
// writes (about three quarters of its changelog bytes in `tessera
// bench`): every byte saved is one less to copy into the batch and the
// memtable, log, flush and compact. Pebble's own block compression sees
// only what one block holds; this sees the whole event.
const timelineS2 = 0x01

// minCompressed is the smallest event worth compressing.
const minCompressed = 128

// appendTimelineValue appends the timeline value of event raw to b.
func appendTimelineValue(b, raw []byte) []byte {
	if len(raw) < minCompressed {
		return append(b, raw...)
	}
	n := s2.MaxEncodedLen(len(raw))
	start := len(b)
	b = slices.Grow(b, 1+n)[:start+1+n]
	b[start] = timelineS2
	enc := s2.Encode(b[start+1:], raw)
	if 1+len(enc) >= len(raw) {
		return append(b[:start], raw...)
	}
	return b[:start+1+len(enc)]
}

// appendTimelineEvent appends the event JSON of timeline value v to b:
// v itself, or its decompression.
func appendTimelineEvent(b, v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != timelineS2 {
		return append(b, v...), nil
	}
	n, err := s2.DecodedLen(v[1:])
	if err != nil {
		return nil, fmt.Errorf("decompressing a timeline event: %w", err)
	}
	start := len(b)
	b = slices.Grow(b, n)[:start+n]
	if _, err := s2.Decode(b[start:], v[1:]); err != nil {
		return nil, fmt.Errorf("decompressing a timeline event: %w", err)
	}
	return b, nil
}

// ReadTimeline returns up to limit of profile id's most recent events,
// newest first, from kv, the timeline store (a committed view when read
// outside the task).
func ReadTimeline(kv *state.KeyValue, id string, limit int) ([][]byte, error) {
	var all [][]byte
	p := timelinePrefix(id)
	if err := kv.Prefix(p, func(_, v []byte) error {
		raw, err := appendTimelineEvent(nil, v)
		if err != nil {
			return err
		}
		all = append(all, raw)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", id, err)
	}
	slices.Reverse(all)
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// timeline is the step's access to its profile's timeline.
func (s *step) timeline() *state.KeyValue { return s.ctx.KeyValue(TimelineStore) }

// recordEvents adds events to the profile's timeline, each at the time
// its "timestamp" says.
func (s *step) recordEvents(events ...[]byte) error {
	for _, raw := range events {
		if err := s.putEvent(raw, profile.ParseMillis(fastjson.GetString(raw, "timestamp"))); err != nil {
			return err
		}
	}
	return s.trimIfFull()
}

// recordEvent adds event raw, at ms.
func (s *step) recordEvent(raw []byte, at int64) error {
	if err := s.putEvent(raw, at); err != nil {
		return err
	}
	return s.trimIfFull()
}

func (s *step) putEvent(raw []byte, at int64) error {
	if s.pr.o.RecentEvents <= 0 {
		return nil
	}
	kv := s.timeline()
	key := timelineKey(s.id, at, raw)
	added := true
	if s.r.TimelineExact {
		if at > s.r.TimelineNewest {
			s.r.TimelineNewest = at
		} else {
			present, err := kv.Has(key)
			if err != nil {
				return fmt.Errorf("recording an event in the timeline: %w", err)
			}
			added = !present
		}
	}
	s.pr.tbuf = appendTimelineValue(s.pr.tbuf[:0], raw)
	if err := kv.Put(key, s.pr.tbuf); err != nil {
		return fmt.Errorf("recording an event in the timeline: %w", err)
	}
	if added {
		s.r.Timeline++
	}
	return nil
}

// trimIfFull trims the timeline once it holds a quarter more than kept.
func (s *step) trimIfFull() error {
	keep := s.pr.o.RecentEvents
	if keep <= 0 || s.r.Timeline <= keep+keep/timelineSlack {
		return nil
	}
	if s.r.TimelineExact && s.r.TimelineNewest%recountEvery != 0 {
		return s.trimOldest(keep)
	}
	return s.trimTimeline(keep)
}

// trimOldest deletes the oldest events down to keep, reading only those:
// the count is exact. Should the store hold fewer than the count says,
// which only an at-least-once crash leaves (see above), it trims by
// reading the whole timeline instead.
func (s *step) trimOldest(keep int) error {
	kv := s.timeline()
	n := s.r.Timeline - keep
	keys := make([][]byte, 0, n)
	err := kv.Prefix(timelinePrefix(s.id), func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		if len(keys) == n {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return fmt.Errorf("trimming the timeline of %s: %w", s.id, err)
	}
	if len(keys) < n {
		return s.trimTimeline(keep)
	}
	for _, k := range keys {
		if err := kv.Delete(k); err != nil {
			return fmt.Errorf("trimming the timeline of %s: %w", s.id, err)
		}
	}
	s.r.Timeline = keep
	return nil
}

// trimTimeline deletes the oldest events down to keep, reading all of
// them, and makes the count exact: it sets it to what the store holds (a
// redelivered event rewrites its entry without adding one, so an inexact
// count may have run ahead).
func (s *step) trimTimeline(keep int) error {
	kv := s.timeline()
	p := timelinePrefix(s.id)
	var keys [][]byte
	if err := kv.Prefix(p, func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		return nil
	}); err != nil {
		return fmt.Errorf("trimming the timeline of %s: %w", s.id, err)
	}
	for len(keys) > keep {
		if err := kv.Delete(keys[0]); err != nil {
			return fmt.Errorf("trimming the timeline of %s: %w", s.id, err)
		}
		keys = keys[1:]
	}
	s.r.Timeline = len(keys)
	s.r.TimelineExact = true
	s.r.TimelineNewest = noEntries
	if len(keys) > 0 {
		s.r.TimelineNewest = timelineAt(keys[len(keys)-1][len(p):])
	}
	return nil
}

// timelineAt returns the time of an entry from its key without the
// profile's prefix.
func timelineAt(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63))
}

// eachTimeline calls fn with each of the profile's events, oldest first.
func (s *step) eachTimeline(fn func(raw []byte) error) error {
	p := timelinePrefix(s.id)
	return s.timeline().Prefix(p, func(_, v []byte) error {
		raw, err := appendTimelineEvent(nil, v)
		if err != nil {
			return fmt.Errorf("reading the timeline of %s: %w", s.id, err)
		}
		return fn(raw)
	})
}

// timelineEmpty reports whether the profile's timeline holds no event, from
// its first entry alone.
func (s *step) timelineEmpty() (bool, error) {
	empty := true
	err := s.timeline().Prefix(timelinePrefix(s.id), func(_, _ []byte) error {
		empty = false
		return errStop
	})
	if err != nil && err != errStop {
		return false, fmt.Errorf("reading the timeline of %s: %w", s.id, err)
	}
	return empty, nil
}

// takeTimeline returns the profile's events, oldest first, and deletes
// them (a loser's, travelling with its state; an erased profile's).
func (s *step) takeTimeline() ([][]byte, error) {
	kv := s.timeline()
	p := timelinePrefix(s.id)
	var keys, events [][]byte
	if err := kv.Prefix(p, func(k, v []byte) error {
		raw, err := appendTimelineEvent(nil, v)
		if err != nil {
			return err
		}
		keys = append(keys, slices.Clone(k))
		events = append(events, raw)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", s.id, err)
	}
	for _, k := range keys {
		if err := kv.Delete(k); err != nil {
			return nil, fmt.Errorf("deleting the timeline of %s: %w", s.id, err)
		}
	}
	s.r.Timeline, s.r.TimelineExact, s.r.TimelineNewest = 0, true, noEntries
	return events, nil
}

// migrateRecent moves the events a record of an earlier version kept
// inside the profile to the timeline store.
func (s *step) migrateRecent() error {
	if len(s.r.P.Recent) == 0 {
		return nil
	}
	recent := s.r.P.Recent
	s.r.P.Recent = nil
	return s.recordEvents(recent...)
}

package identity

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
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
// so a profile's events are contiguous and in time order, and an event is
// written once, where it was kept inside the profile record before: there,
// every event rewrote up to a hundred others (~110 KB per event at the
// default, in the store and its changelog), which `tessera bench` showed
// as the hub's largest cost.
//
// The record counts its entries (record.Timeline). An event adds one; once
// the count passes the limit by a quarter, the oldest are deleted down to
// the limit, so trimming costs one scan per quarter-limit events rather than
// one per event. A profile thus holds between RecentEvents and 1.25 ×
// RecentEvents events; readers take the newest RecentEvents.

// timelineSlack is the share of the limit a timeline may grow past it
// before it is trimmed.
const timelineSlack = 4 // a quarter

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

// ReadTimeline returns up to limit of profile id's most recent events,
// newest first, from kv, the timeline store (a committed view when read
// outside the task).
func ReadTimeline(kv *state.KeyValue, id string, limit int) ([][]byte, error) {
	var all [][]byte
	p := timelinePrefix(id)
	if err := kv.Prefix(p, func(_, v []byte) error {
		all = append(all, slices.Clone(v))
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
	if err := s.timeline().Put(timelineKey(s.id, at, raw), raw); err != nil {
		return fmt.Errorf("recording an event in the timeline: %w", err)
	}
	s.r.Timeline++
	return nil
}

// trimIfFull trims the timeline once it holds a quarter more than kept.
func (s *step) trimIfFull() error {
	keep := s.pr.o.RecentEvents
	if keep <= 0 || s.r.Timeline <= keep+keep/timelineSlack {
		return nil
	}
	return s.trimTimeline(keep)
}

// trimTimeline deletes the oldest events down to keep, and sets the count
// to what the store holds (a redelivered event rewrites its entry without
// adding one, so the count may have run ahead).
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
	return nil
}

// eachTimeline calls fn with each of the profile's events, oldest first.
func (s *step) eachTimeline(fn func(raw []byte) error) error {
	p := timelinePrefix(s.id)
	return s.timeline().Prefix(p, func(_, v []byte) error { return fn(v) })
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
		keys = append(keys, slices.Clone(k))
		events = append(events, slices.Clone(v))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading the timeline of %s: %w", s.id, err)
	}
	for _, k := range keys {
		if err := kv.Delete(k); err != nil {
			return nil, fmt.Errorf("deleting the timeline of %s: %w", s.id, err)
		}
	}
	s.r.Timeline = 0
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

package identity

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/valyala/fastjson"
)

// resolver is the identifier stage: it routes events to the profile of
// their routing identifier and owns the identifier → profile directory.
type resolver struct {
	o Options
	c *codecs
	t Topics
	p fastjson.Parser

	// sweepFrom is where the next dedupe expiry sweep resumes.
	sweepFrom []byte
}

func (r *resolver) Init(ctx *topology.Context) error {
	// Expire remembered messageIds in bounded slices, so a sweep never
	// stalls the task.
	ctx.Schedule(time.Minute, topology.WallClock, r.sweep)
	// A messageId is read once, when its event arrives (a retry is
	// rare): caching the dedupe store would only add a copy per event.
	ctx.KeyValue(DedupeStore).NoCache()
	return nil
}

func (r *resolver) Process(ctx *topology.Context, rec topology.Record) error {
	if rec.Topic == r.t.Events {
		if r.o.SkipEvent != nil && r.o.SkipEvent(rec.Partition, rec.Offset) {
			return nil
		}
		return r.event(ctx, rec)
	}
	l, err := r.c.decodeLink(rec.Value)
	if err != nil {
		return err
	}
	switch l.Kind {
	case linkResolve:
		ids := make([]profile.Ident, 0, len(l.Identifiers))
		for _, s := range l.Identifiers {
			id, err := profile.ParseIdent(s)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return r.resolve(ctx, rec, l.Event, nil, ids, l.Identifiers)
	case linkClaim:
		return r.claim(ctx, rec, l)
	case linkRepoint:
		return r.repoint(ctx, l)
	case linkErase:
		return r.erase(ctx, rec, l)
	case linkUnlink:
		return r.unlink(ctx, l)
	}
	return fmt.Errorf("unknown identity link kind %q", l.Kind)
}

// event routes a raw event: resolved here when its routing identifier
// lives on this partition, else sent to the identifier's partition.
func (r *resolver) event(ctx *topology.Context, rec topology.Record) error {
	v, err := r.p.ParseBytes(rec.Value)
	if err != nil {
		return r.invalid(ctx, rec, fmt.Sprintf("event is not JSON: %v", err))
	}
	ids := r.o.Rules.Extract(v)
	if len(ids) == 0 {
		return r.invalid(ctx, rec, "event has no usable identifier (all are missing or blocked)")
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	routing := strs[0]
	if topology.PartitionFor([]byte(routing), int(r.o.Partitions)) == ctx.Partition() {
		return r.resolve(ctx, rec, rec.Value, v, ids, strs)
	}
	b, err := r.c.encodeLink(link{Kind: linkResolve, Identifier: routing, Event: rec.Value, Identifiers: strs})
	if err != nil {
		return err
	}
	return ctx.ForwardTo("resolve-links", topology.Record{Key: []byte(routing), Value: b, Timestamp: rec.Timestamp})
}

func (r *resolver) invalid(ctx *topology.Context, rec topology.Record, reason string) error {
	v, err := schemas.InvalidEvent{
		Raw: rec.Value, Reason: reason, Source: fmt.Sprintf("kafka:%s[%d]@%d", rec.Topic, rec.Partition, rec.Offset),
		ReceivedAt: rec.Timestamp,
	}.Encode()
	if err != nil {
		return err
	}
	return ctx.ForwardTo("resolve-invalid", topology.Record{Key: rec.Key, Value: v, Timestamp: rec.Timestamp})
}

// resolve drops a repeated messageId, finds or creates the owner of the
// routing identifier ids[0], and sends the event there. v is event parsed
// by r.p, or nil to parse it here: the event is parsed once per stage, not
// once per field read (fastjson.GetString parses the whole document).
// strs are ids as strings, strs[i] = ids[i].String().
func (r *resolver) resolve(ctx *topology.Context, rec topology.Record, event []byte, v *fastjson.Value, ids []profile.Ident, strs []string) error {
	routing := strs[0]
	if v == nil {
		// A routed event was checked by the stage that routed it; one
		// that does not parse reads as having no messageId and no
		// timestamp, as it did before.
		v, _ = r.p.ParseBytes(event)
	}
	if r.o.ErasedAt != nil {
		if at, ok := r.o.ErasedAt(ids); ok && !knownAt(v, rec.Timestamp).After(at) {
			return nil // a person erased since: this event must not bring them back
		}
	}
	msgID := string(v.GetStringBytes("messageId"))
	dedupe := ctx.KeyValue(DedupeStore)
	if msgID != "" {
		key := append(append([]byte(routing), 0), msgID...)
		seen, err := dedupe.Get(key)
		if err != nil {
			return err
		}
		if seen != nil {
			return nil // a retry or a re-import: already counted
		}
		if err := dedupe.Put(key, binary.AppendVarint(nil, ctx.StreamTime().UnixMilli())); err != nil {
			return err
		}
	}
	store := ctx.KeyValue(IdentitiesStore)
	cur, err := store.Get([]byte(routing))
	if err != nil {
		return err
	}
	o := op{Kind: opEvent, Identifiers: strs, Event: event}
	if cur == nil {
		created := profile.ParseMillis(string(v.GetStringBytes("timestamp")))
		if created == 0 {
			created = rec.Timestamp.UnixMilli()
		}
		own := owner{Profile: ProfileID(routing), Created: created}
		if err := store.Put([]byte(routing), own.encode()); err != nil {
			return err
		}
		o.Profile, o.Created = own.Profile, own.Created
	} else {
		own, err := decodeOwner(cur)
		if err != nil {
			return err
		}
		o.Profile = own.Profile
	}
	return r.sendOp(ctx, o, rec.Timestamp)
}

// claim handles LINK: the identifier becomes the claimant's, or, owned by
// another profile, starts a merge at the loser.
func (r *resolver) claim(ctx *topology.Context, rec topology.Record, l link) error {
	store := ctx.KeyValue(IdentitiesStore)
	cur, err := store.Get([]byte(l.Identifier))
	if err != nil {
		return err
	}
	if cur == nil {
		return store.Put([]byte(l.Identifier), owner{Profile: l.Profile, Created: l.Created}.encode())
	}
	own, err := decodeOwner(cur)
	if err != nil {
		return err
	}
	if own.Profile == l.Profile {
		return nil
	}
	winner, loser := own, owner{Profile: l.Profile, Created: l.Created}
	if profile.Before(loser.Created, loser.Profile, winner.Created, winner.Profile) {
		winner, loser = loser, winner
	}
	return r.sendOp(ctx, op{
		Kind: opMergeRequest, Profile: loser.Profile, Peer: winner.Profile, PeerCreated: winner.Created,
		Cause: l.Identifier, Origin: l.Profile, Owner: own.Profile,
	}, rec.Timestamp)
}

// repoint moves an identifier to the profile its owner merged into, if the
// owner is still the one that merged.
func (r *resolver) repoint(ctx *topology.Context, l link) error {
	store := ctx.KeyValue(IdentitiesStore)
	cur, err := store.Get([]byte(l.Identifier))
	if err != nil || cur == nil {
		return err
	}
	own, err := decodeOwner(cur)
	if err != nil {
		return err
	}
	if own.Profile != l.From {
		return nil
	}
	return store.Put([]byte(l.Identifier), owner{Profile: l.Profile, Created: l.Created}.encode())
}

// erase handles ERASE: the profile owning the identifier, if any, is
// erased; the profile stage follows merges to the live one.
func (r *resolver) erase(ctx *topology.Context, rec topology.Record, l link) error {
	cur, err := ctx.KeyValue(IdentitiesStore).Get([]byte(l.Identifier))
	if err != nil || cur == nil {
		return err
	}
	own, err := decodeOwner(cur)
	if err != nil {
		return err
	}
	return r.sendOp(ctx, op{Kind: opErase, Profile: own.Profile, Cause: l.From, Created: l.Created}, rec.Timestamp)
}

// unlink handles UNLINK: the profile that held the identifier was erased,
// so the identifier and the messageIds remembered under it are deleted
// (tombstones in both changelogs). It is deleted only while its owner is
// the erased profile or one merged into it (l.Identifiers): the
// identifier may have been claimed anew since. A REPOINT to the erased
// profile cannot come after this: the erased profile had absorbed the
// loser, so the loser's REPOINTs were written before this UNLINK, to the
// same partition.
func (r *resolver) unlink(ctx *topology.Context, l link) error {
	store := ctx.KeyValue(IdentitiesStore)
	cur, err := store.Get([]byte(l.Identifier))
	if err != nil {
		return err
	}
	if cur != nil {
		own, err := decodeOwner(cur)
		if err != nil {
			return err
		}
		if slices.Contains(l.Identifiers, own.Profile) {
			if err := store.Delete([]byte(l.Identifier)); err != nil {
				return err
			}
		}
	}
	dedupe := ctx.KeyValue(DedupeStore)
	var doomed [][]byte
	if err := dedupe.Prefix(append([]byte(l.Identifier), 0), func(k, _ []byte) error {
		doomed = append(doomed, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return fmt.Errorf("listing the messageIds of an erased identifier: %w", err)
	}
	for _, k := range doomed {
		if err := dedupe.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// knownAt is when event v was first known: the earlier of the time it
// says it happened ("timestamp", corrected by ingest) and the time the hub
// received it ("receivedAt"), else the record's time. An erasure drops an
// event known by then: one still on its way, and an old one imported or
// replayed after it.
func knownAt(v *fastjson.Value, ts time.Time) time.Time {
	at := ts
	if ms := profile.ParseMillis(string(v.GetStringBytes("receivedAt"))); ms != 0 {
		at = time.UnixMilli(ms)
	}
	if ms := profile.ParseMillis(string(v.GetStringBytes("timestamp"))); ms != 0 && time.UnixMilli(ms).Before(at) {
		at = time.UnixMilli(ms)
	}
	return at
}

func (r *resolver) sendOp(ctx *topology.Context, o op, ts time.Time) error {
	b, err := r.c.encodeOp(o, ctx)
	if err != nil {
		return err
	}
	return ctx.ForwardTo("resolve-ops", topology.Record{Key: []byte(o.Profile), Value: b, Timestamp: ts})
}

// sweepBatch bounds the entries one sweep looks at.
const sweepBatch = 10_000

// sweep deletes messageIds first seen more than the dedupe window before
// the task's stream time, resuming where the last sweep stopped.
func (r *resolver) sweep(ctx *topology.Context, _ time.Time) error {
	horizon := ctx.StreamTime().Add(-r.o.DedupeWindow).UnixMilli()
	store := ctx.KeyValue(DedupeStore)
	var doomed [][]byte
	n := 0
	var last []byte
	err := store.Range(r.sweepFrom, nil, func(k, v []byte) error {
		n++
		if n > sweepBatch {
			return errStop
		}
		last = append(last[:0], k...)
		if t, m := binary.Varint(v); m > 0 && t < horizon {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	for _, k := range doomed {
		if err := store.Delete(k); err != nil {
			return err
		}
	}
	if n > sweepBatch {
		r.sweepFrom = append(last, 0)
	} else {
		r.sweepFrom = nil
	}
	return nil
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

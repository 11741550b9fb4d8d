package identity

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
)

// EraseRequest returns the record that asks the identity stage of app to
// erase the profile holding id, for the regulation named regulation made
// at at: the topic to write it to (<app>.identity-links), its key and its
// value. Writing one per identifier of the person is what a delete
// regulation does; an identifier nobody holds is ignored, and the second
// request to reach an erased profile does nothing.
func EraseRequest(app string, id profile.Ident, regulation string, at time.Time) (topic string, key, value []byte, err error) {
	c, err := newCodecs()
	if err != nil {
		return "", nil, nil, err
	}
	k := id.String()
	v, err := c.encodeLink(link{Kind: linkErase, Identifier: k, From: regulation, Created: at.UnixMilli()})
	if err != nil {
		return "", nil, nil, err
	}
	return TopicsOf(app).Links, []byte(k), v, nil
}

// profileDeleted is the activation type that tells every destination to
// forget a profile (connectors/sink.ProfileDeleted).
const profileDeleted = "profile_deleted"

// Erasure.
//
// A request (regulation.Delete) reaches the identifier stage as ERASE
// links, one per identifier; each becomes an ERASE op to the identifier's
// owner, which follows redirects to the live profile and waits in its
// queue while a merge is under way, so an erasure never splits a merge:
// an absorbing profile is erased with what it absorbs, an offering one is
// erased by the winner it folds into.
//
// The live profile then, in one step:
//   - deletes its feature tiles and its timeline;
//   - sends UNLINK for each of its identifiers, which deletes the
//     identifier and the messageIds remembered under it;
//   - sends ERASE (peer = itself) to each profile merged into it, whose
//     redirect becomes a marker;
//   - emits profile_deleted, naming the identifiers, to every destination;
//   - becomes a marker: a record with nothing of the person but the time
//     of the request.
//
// Each deletion is a tombstone in the store's changelog. The marker
// answers what was already on its way (afterErasure) and is deleted by
// the sweep after Options.ErasureGrace, a tombstone too.

// erase erases the live profile (see above).
func (s *step) erase(o op) error {
	p := &s.r.P
	if set := s.pr.features(); set != nil {
		if err := set.Delete(s.ctx.Window(FeaturesStore), []byte(s.id)); err != nil {
			return fmt.Errorf("erasing feature tiles: %w", err)
		}
	}
	if _, err := s.takeTimeline(); err != nil {
		return fmt.Errorf("erasing the timeline: %w", err)
	}
	owners := append([]string{s.id}, p.MergedFrom...)
	for _, id := range p.Identifiers {
		if err := s.sendLink(link{Kind: linkUnlink, Identifier: id.String(), Profile: s.id, Identifiers: owners}); err != nil {
			return err
		}
	}
	for _, m := range p.MergedFrom {
		if err := s.send(op{Kind: opErase, Profile: m, Peer: s.id, Cause: o.Cause, Created: o.Created}); err != nil {
			return err
		}
	}
	// The notice names the identifiers, and nothing else of the person:
	// a destination keyed by email or user id finds them by it.
	notice, err := json.Marshal(map[string]any{
		"id": s.id, "identifiers": identViews(p.Identifiers), "merged_from": p.MergedFrom,
		"erased_at": time.UnixMilli(o.Created).UTC().Format(time.RFC3339Nano), "regulation": o.Cause,
	})
	if err != nil {
		return fmt.Errorf("encoding the profile_deleted notice: %w", err)
	}
	if err := s.activate(profileDeleted, "", o.Cause, s.ctx.StreamTime(), notice, nil); err != nil {
		return err
	}
	s.becomeMarker(o.Created)
	return nil
}

// becomeMarker replaces the record with an erasure marker, keeping only
// the queue still to answer.
func (s *step) becomeMarker(erasedAt int64) {
	if erasedAt == 0 {
		erasedAt = 1 // a marker's Erased is never zero
	}
	*s.r = record{Erased: erasedAt, Queue: s.r.Queue, QueueHead: s.r.QueueHead, Queued: s.r.Queued}
	s.erasedNow = true
}

// afterErasure answers an op that reached an erased profile's marker.
func (s *step) afterErasure(o op) error {
	switch o.Kind {
	case opEvent:
		// An event routed here before the identifiers were unlinked. If
		// it was known before the erasure (knownAt), it is the person's
		// and is dropped (the identifier stage drops those it knows of;
		// this catches the ones already past it). A later one goes back
		// to the identifier stage, where its identifiers are free: the
		// UNLINK of its routing identifier went to the same partition
		// before this.
		v, err := s.pr.p.ParseBytes(o.Event)
		if err != nil {
			return fmt.Errorf("parsing an event routed to an erased profile: %w", err)
		}
		if !knownAt(v, s.ts).After(time.UnixMilli(s.r.Erased)) || len(o.Identifiers) == 0 {
			return nil
		}
		return s.sendLink(link{Kind: linkResolve, Identifier: o.Identifiers[0], Event: o.Event, Identifiers: o.Identifiers})
	case opMergeRequest:
		// The erased profile was to fold into another: there is nothing
		// left to fold. Whoever reserved the identifier that caused it
		// lets it go, as after a refused merge.
		if o.Origin == "" {
			return nil
		}
		return s.send(op{Kind: opDrop, Profile: o.Origin, Cause: o.Cause, Owner: o.Owner})
	case opOffer:
		// A loser offered itself to the erased profile: refused.
		if err := s.send(op{Kind: opRefuse, Profile: o.Peer, Peer: s.id, Cause: o.Cause, Origin: o.Origin, Owner: o.Owner, Reason: "profile erased"}); err != nil {
			return err
		}
		return s.send(op{Kind: opDrop, Profile: o.Origin, Cause: o.Cause, Owner: o.Owner})
	}
	// ERASE again, DROP: nothing to do. ACCEPT, REFUSE and ABSORB cannot
	// come: an erasure waits while an offer or an absorption is out.
	return nil
}

// forget deletes the markers this task wrote whose grace has passed.
func (pr *profiler) forget(ctx *topology.Context, now time.Time) error {
	store := ctx.KeyValue(ProfilesStore)
	n := 0
	for _, m := range pr.markers {
		if now.Sub(m.erasedAt) < pr.o.ErasureGrace {
			break
		}
		n++
		raw, err := store.Get([]byte(m.id))
		if err != nil {
			return err
		}
		if raw == nil {
			continue
		}
		r, err := decodeRecord(raw, nil)
		if err != nil {
			return fmt.Errorf("profile %s: %w", m.id, err)
		}
		// A new profile may have taken the id since; a marker still
		// answering a queue waits for the round sweep.
		if r.Erased != 0 && r.P.ID == "" && r.queued() == 0 {
			if err := store.Delete([]byte(m.id)); err != nil {
				return fmt.Errorf("deleting the erasure marker of %s: %w", m.id, err)
			}
		}
	}
	pr.markers = pr.markers[n:]
	return nil
}

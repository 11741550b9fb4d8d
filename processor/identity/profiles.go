package identity

import (
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/valyala/fastjson"
)

// profiler is the profile stage: it applies events to profiles and runs
// the profiles' side of the merge protocol.
type profiler struct {
	o Options
	c *codecs
	t Topics
	p fastjson.Parser
}

func (pr *profiler) Init(*topology.Context) error { return nil }

// features returns the feature set in force, or nil.
func (pr *profiler) features() *features.Set {
	if pr.o.Features == nil {
		return nil
	}
	return pr.o.Features()
}

func (pr *profiler) Process(ctx *topology.Context, rec topology.Record) error {
	o, err := pr.c.decodeOp(rec.Value)
	if err != nil {
		return err
	}
	store := ctx.KeyValue(ProfilesStore)
	raw, err := store.Get([]byte(o.Profile))
	if err != nil {
		return err
	}
	r := &record{}
	if raw != nil {
		if r, err = decodeRecord(raw); err != nil {
			return fmt.Errorf("profile %s: %w", o.Profile, err)
		}
	}
	s := &step{pr: pr, ctx: ctx, id: o.Profile, r: r, ts: rec.Timestamp}
	if err := s.handle(o, rec.Value); err != nil {
		return fmt.Errorf("profile %s, %s: %w", o.Profile, o.Kind, err)
	}
	// Replay what waited while the profile was busy, until it is busy
	// again or the queue is empty.
	for len(r.Queue) > 0 && !r.busy() && r.P.ID != "" {
		next := r.Queue[0]
		r.Queue = r.Queue[1:]
		q, err := pr.c.decodeOp(next)
		if err != nil {
			return err
		}
		if err := s.handle(q, next); err != nil {
			return fmt.Errorf("profile %s, queued %s: %w", o.Profile, q.Kind, err)
		}
	}
	return store.Put([]byte(o.Profile), r.encode())
}

// step is the processing of one op (and the queue it releases) for one
// profile.
type step struct {
	pr  *profiler
	ctx *topology.Context
	id  string
	r   *record
	ts  time.Time
}

func (s *step) handle(o op, raw []byte) error {
	r := &s.r.P
	switch {
	case s.r.MergedInto != "":
		return s.redirect(o)
	case r.ID == "" && o.Kind == opEvent && o.Created != 0:
		r.ID, r.Created = s.id, o.Created
		first, err := profile.ParseIdent(o.Identifiers[0])
		if err != nil {
			return err
		}
		// The routing identifier is this profile's by creation: the
		// identifier stage recorded the owner before sending the event.
		r.Identifiers = []profile.Ident{first}
		return s.event(o)
	case r.ID == "":
		s.r.Queue = append(s.r.Queue, raw)
		return nil
	}
	switch o.Kind {
	// The answer may come from a profile the winner folded into since:
	// offers follow redirects. One offer is out at a time, so any answer
	// is its answer.
	case opAccept:
		if s.r.Offering == "" {
			return fmt.Errorf("ACCEPT from %s with no offer out", o.Peer)
		}
		return s.accepted(o)
	case opRefuse:
		if s.r.Offering == "" {
			return fmt.Errorf("REFUSE from %s with no offer out", o.Peer)
		}
		s.r.Offering = ""
		return nil
	case opAbsorb:
		if s.r.Absorbing != o.Peer {
			return fmt.Errorf("ABSORB from %s while absorbing %q", o.Peer, s.r.Absorbing)
		}
		var q profile.Profile
		if err := q.UnmarshalBinary(o.State); err != nil {
			return err
		}
		r.Absorb(&q, s.pr.o.RecentEvents)
		if set := s.pr.features(); set != nil && len(o.Features) > 0 {
			if err := set.Import(s.ctx.Window(FeaturesStore), []byte(s.id), o.Features); err != nil {
				return err
			}
		}
		s.r.Absorbing = ""
		return nil
	}
	if s.r.busy() {
		s.r.Queue = append(s.r.Queue, raw)
		return nil
	}
	switch o.Kind {
	case opEvent:
		return s.event(o)
	case opMergeRequest:
		if o.Peer == s.id {
			return nil // already one profile
		}
		s.r.Offering = o.Peer
		return s.send(op{
			Kind: opOffer, Profile: o.Peer, Peer: s.id, PeerCreated: r.Created,
			Cause: o.Cause, Origin: o.Origin, Owner: o.Owner, Identifiers: identStrings(r.Identifiers),
		})
	case opOffer:
		return s.offer(o)
	case opDrop:
		s.drop(o)
		return nil
	}
	return fmt.Errorf("unexpected %s for a live profile", o.Kind)
}

// redirect sends what reached a merged profile on to the profile it folded
// into, which is earlier, so redirects end.
func (s *step) redirect(o op) error {
	to := s.r.MergedInto
	switch o.Kind {
	case opEvent, opOffer, opDrop:
		o.Profile = to
		return s.send(o)
	case opMergeRequest:
		// The merge is now between the redirect target and the winner;
		// the later of the two is the loser.
		if o.Peer == to {
			return nil
		}
		loser, winner, winnerCreated := to, o.Peer, o.PeerCreated
		if profile.Before(s.r.MergedCreated, to, o.PeerCreated, o.Peer) {
			loser, winner, winnerCreated = o.Peer, to, s.r.MergedCreated
		}
		return s.send(op{Kind: opMergeRequest, Profile: loser, Peer: winner, PeerCreated: winnerCreated,
			Cause: o.Cause, Origin: o.Origin, Owner: o.Owner})
	}
	return fmt.Errorf("%s reached profile %s, merged into %s", o.Kind, s.id, to)
}

// event applies an event and reserves the identifiers it brings that fit
// the limits, highest priority first; the rest are dropped.
func (s *step) event(o op) error {
	r := &s.r.P
	v, err := s.pr.p.ParseBytes(o.Event)
	if err != nil {
		return fmt.Errorf("parsing routed event: %w", err)
	}
	at := profile.ParseMillis(string(v.GetStringBytes("timestamp")))
	if set := s.pr.features(); set != nil {
		if _, err := set.Update(s.ctx.Window(FeaturesStore), []byte(s.id), v, s.ctx.StreamTime()); err != nil {
			return err
		}
	}
	r.ApplyEvent(v, o.Event, at, profile.Options{Keep: s.pr.o.RecentEvents, PurchaseEvent: s.pr.o.PurchaseEvent, SpendProperty: s.pr.o.SpendProperty})
	rules := s.pr.o.Rules
	for _, str := range o.Identifiers {
		id, err := profile.ParseIdent(str)
		if err != nil {
			return err
		}
		if r.Has(id) {
			continue
		}
		if ok, _ := rules.fits(r, []profile.Ident{id}); !ok {
			continue
		}
		r.Identifiers = append(r.Identifiers, id)
		if err := s.sendLink(link{Kind: linkClaim, Identifier: str, Profile: s.id, Created: r.Created}); err != nil {
			return err
		}
	}
	return nil
}

// offer decides a loser's offer: accept when the union fits the limits.
func (s *step) offer(o op) error {
	r := &s.r.P
	ids := make([]profile.Ident, 0, len(o.Identifiers))
	for _, str := range o.Identifiers {
		id, err := profile.ParseIdent(str)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	if ok, why := s.pr.o.Rules.fits(r, ids); !ok {
		if err := s.send(op{Kind: opRefuse, Profile: o.Peer, Peer: s.id, Cause: o.Cause, Origin: o.Origin, Owner: o.Owner, Reason: why}); err != nil {
			return err
		}
		// The identifier that caused the merge stays with its owner;
		// whoever reserved it lets it go.
		return s.send(op{Kind: opDrop, Profile: o.Origin, Cause: o.Cause, Owner: o.Owner})
	}
	for _, id := range ids {
		if !r.Has(id) {
			r.Identifiers = append(r.Identifiers, id)
		}
	}
	s.r.Absorbing = o.Peer
	return s.send(op{Kind: opAccept, Profile: o.Peer, Peer: s.id, PeerCreated: r.Created})
}

// accepted folds this profile into the winner: state to it, a redirect
// here, and its identifiers repointed.
func (s *step) accepted(o op) error {
	r := &s.r.P
	absorb := op{Kind: opAbsorb, Profile: o.Peer, Peer: s.id, State: r.AppendBinary(nil)}
	if set := s.pr.features(); set != nil {
		// The winner may live on another partition: the tiles travel with
		// the state, and leave this store.
		w := s.ctx.Window(FeaturesStore)
		exp, err := set.Export(nil, w, []byte(s.id))
		if err != nil {
			return err
		}
		absorb.Features = exp
		if err := set.Delete(w, []byte(s.id)); err != nil {
			return err
		}
	}
	// The record carries this task's stream time, so the winner's stream
	// time is at least ours when it imports the tiles (features.Import).
	ts := s.ts
	if st := s.ctx.StreamTime(); st.After(ts) {
		ts = st
	}
	if err := s.sendAt(absorb, ts); err != nil {
		return err
	}
	for _, id := range r.Identifiers {
		if err := s.sendLink(link{Kind: linkRepoint, Identifier: id.String(), Profile: o.Peer, Created: o.PeerCreated, From: s.id}); err != nil {
			return err
		}
	}
	s.r.Offering = ""
	s.r.MergedInto, s.r.MergedCreated = o.Peer, o.PeerCreated
	s.r.P = profile.Profile{ID: s.id, Created: r.Created}
	// What waited here follows the redirect.
	queue := s.r.Queue
	s.r.Queue = nil
	for _, raw := range queue {
		q, err := s.pr.c.decodeOp(raw)
		if err != nil {
			return err
		}
		if err := s.redirect(q); err != nil {
			return err
		}
	}
	return nil
}

// drop lets go of an identifier reserved for a merge that was refused,
// unless this profile holds it through its owner.
func (s *step) drop(o op) {
	r := &s.r.P
	if o.Owner == s.id {
		return
	}
	for _, m := range r.MergedFrom {
		if m == o.Owner {
			return
		}
	}
	id, err := profile.ParseIdent(o.Cause)
	if err != nil {
		return
	}
	r.Remove(id)
}

func (s *step) send(o op) error { return s.sendAt(o, s.ts) }

func (s *step) sendAt(o op, ts time.Time) error {
	b, err := s.pr.c.encodeOp(o)
	if err != nil {
		return err
	}
	return s.ctx.ForwardTo("profile-ops", topology.Record{Key: []byte(o.Profile), Value: b, Timestamp: ts})
}

func (s *step) sendLink(l link) error {
	b, err := s.pr.c.encodeLink(l)
	if err != nil {
		return err
	}
	return s.ctx.ForwardTo("profile-links", topology.Record{Key: []byte(l.Identifier), Value: b, Timestamp: s.ts})
}

func identStrings(ids []profile.Ident) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

package identity

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
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
	// hp parses a profile's recent events when a feature is computed from
	// history, leaving p's value (the event in hand) intact.
	hp fastjson.Parser

	// set is this task's clone of the Set in force, setOf: a Set keeps
	// scratch buffers, and tasks may run on several threads at once
	// (topology.Config.Threads).
	setOf, set *features.Set
	// only caches one-feature Sets of the Set in force, by feature key.
	onlyOf *features.Set
	only   map[string]*features.Set
	// ruleSet is the Set of the features the audiences read, for the
	// feature and audience sets in ruleOf (ruleFeatures).
	ruleOf struct {
		features  *features.Set
		audiences *audience.Set
	}
	ruleSet *features.Set
	// names interns the names in the records this task decodes.
	names interner
	// buf holds the encoding of the record being written; store.Put
	// copies it, so it is reused for the next.
	buf []byte
	// tbuf holds the timeline value being written (appendTimelineValue);
	// reused as buf is.
	tbuf []byte
	// recs holds the records this task wrote last, decoded.
	recs *recordCache
	// rules is where evaluate builds its audiences' environment and
	// memberships, reused from one evaluation to the next.
	rules ruleScratch
	// sweepFrom is where the next maintenance sweep resumes, nil between
	// rounds.
	sweepFrom []byte
	// yielded counts the sweeps in a row that visited no profile because
	// the task was behind (sweepYield).
	yielded int
	// expiring says the current round of sweeps (one pass over the
	// task's profiles) also expires feature tiles; expiredAt is the stream
	// time the last expiring round began.
	expiring  bool
	expiredAt time.Time
	// roundAt is the stream time the last round began, with the
	// definitions in force then: a round starts again only when stream
	// time has moved roundEvery since, or the definitions changed.
	roundAt        time.Time
	roundFeatures  *features.Set
	roundAudiences *audience.Set
	// inRound says a round is under way; fresh holds the profiles that
	// an event or a merge evaluated since it began, with the definitions
	// freshFeatures and freshAudiences: the round passes them by, as
	// they are as current as its visit would make them.
	inRound        bool
	fresh          map[string]struct{}
	freshFeatures  *features.Set
	freshAudiences *audience.Set
	// markers are the erasure markers this task wrote, oldest first, to
	// delete once their grace has passed.
	markers []marker
	// sweeps is tessera_profile_sweep_total, nil without a Registerer.
	sweeps *prometheus.CounterVec
}

// marker is an erased profile's marker awaiting deletion.
type marker struct {
	id       string
	erasedAt time.Time
}

// sweepBudget bounds the wall time of one sweep: it visits slices of
// profileSweepBatch profiles until the budget is spent, and the next sweep
// resumes after them. A sweep runs on the processing loop, so records wait
// behind it; it used to visit 2,000 profiles at once, every second on every
// task, however long that took. A variable so that a test can make a round
// take many sweeps.
var sweepBudget = 4 * time.Millisecond

// sweepBacklog and sweepYield make the sweep yield to records: with more
// than sweepBacklog records waiting for its task (Context.Backlog), only
// one sweep in sweepYield visits profiles. The budget is per task, so with
// a dozen tasks behind, sweeps took 6.5–12 % of the hub's CPU in `tessera
// bench` (a catch-up throughout) and held the loop up to sweepBudget a
// task at a time. A smaller budget would not do: a sweep visits at least
// one slice of profiles, which alone takes about that long. Behind,
// time-driven changes come later; a round still ends, at a quarter of the
// pace. A thousand records is more than the transaction marker or two a
// caught-up task shows under exactly-once, and well under a second of one
// partition's records under load.
const (
	sweepBacklog = 1000
	sweepYield   = 4
)

// backlogOf is Context.Backlog; a variable so that a test can put a task
// behind, which the topology's test driver never is.
var backlogOf = (*topology.Context).Backlog

// sweepInterval, profileSweepBatch and sweepBudget pace the maintenance
// sweep: it computes new features from the history of profiles that get no
// events, and expires tiles no window reads any more, a bounded slice of
// profiles at a time.
const (
	sweepInterval     = 250 * time.Millisecond
	profileSweepBatch = 32
	// expireEvery is how much stream time passes between the sweep rounds
	// that expire tiles. Expiry only reclaims space (values are right
	// without it, see features.Set.Expire), and it costs a range scan per
	// windowed feature and profile that may hold a tile past its cut-off
	// (record.TileFloor): done on every round, for every profile, it took
	// 7.5 % of the hub's CPU in `tessera bench`.
	expireEvery = time.Hour
	// roundEvery is how much stream time passes between rounds when the
	// definitions stay the same. A round re-evaluates every profile for
	// what time alone changes (a window's events ageing out of a
	// feature, an audience exit without a new event): re-evaluating all
	// of them every second took 22.7 % of the hub's CPU in `tessera bench`,
	// while windows are hours to days. Such time-driven changes arrive up
	// to a minute of stream time late; a profile's own events still
	// re-evaluate it at once.
	roundEvery = time.Minute
)

func (pr *profiler) Init(ctx *topology.Context) error {
	ctx.Schedule(sweepInterval, topology.WallClock, pr.sweep)
	return nil
}

// sweep deletes the erasure markers whose grace has passed and visits the
// next of this task's profiles, for about sweepBudget.
func (pr *profiler) sweep(ctx *topology.Context, now time.Time) error {
	if err := pr.forget(ctx, now); err != nil {
		return err
	}
	set := pr.features()
	if set == nil && pr.audiences() == nil {
		return nil
	}
	if pr.sweepFrom == nil { // a new round over the task's profiles
		now := ctx.StreamTime()
		aud := pr.audiences()
		if !pr.roundAt.IsZero() && set == pr.roundFeatures && aud == pr.roundAudiences && now.Sub(pr.roundAt) < roundEvery {
			return nil
		}
		pr.roundAt, pr.roundFeatures, pr.roundAudiences = now, set, aud
		pr.inRound, pr.freshFeatures, pr.freshAudiences = true, set, aud
		clear(pr.fresh)
		pr.expiring = pr.expiredAt.IsZero() || now.Sub(pr.expiredAt) >= expireEvery
		if pr.expiring {
			pr.expiredAt = now
		}
	}
	if backlogOf(ctx) > sweepBacklog {
		// Behind: visit profiles on one sweep in sweepYield.
		if pr.yielded++; pr.yielded < sweepYield {
			return nil
		}
	}
	pr.yielded = 0
	start := time.Now()
	for {
		if err := pr.sweepSlice(ctx, set, now); err != nil {
			return err
		}
		if pr.sweepFrom == nil || time.Since(start) >= sweepBudget {
			return nil
		}
	}
}

// sweepSlice visits the next profileSweepBatch profiles of the round from
// pr.sweepFrom, and moves pr.sweepFrom past them (nil at the round's end).
func (pr *profiler) sweepSlice(ctx *topology.Context, set *features.Set, now time.Time) error {
	store := ctx.KeyValue(ProfilesStore)
	type item struct {
		id, value []byte
		// fresh: evaluated since the round began, so not evaluated
		// again; its value is not copied unless the round expires.
		fresh bool
	}
	var batch []item
	n := 0
	// Profiles that an event or a merge evaluated since the round began
	// are passed by, unless the round expires tiles.
	current := pr.freshFeatures == set && pr.freshAudiences == pr.audiences()
	expire := set != nil && pr.expiring
	// The slice is copied out before it is visited: visiting writes to
	// the store, which an open iterator over it must not see change.
	err := store.Range(pr.sweepFrom, nil, func(k, v []byte) error {
		n++
		if n > profileSweepBatch {
			return errStop
		}
		it := item{id: append([]byte(nil), k...)}
		_, it.fresh = pr.fresh[string(k)]
		if it.fresh = it.fresh && current; !it.fresh || expire {
			it.value = append([]byte(nil), v...)
		}
		batch = append(batch, it)
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	if n > profileSweepBatch {
		pr.sweepFrom = append(batch[len(batch)-1].id, 0)
	} else {
		pr.sweepFrom = nil
		// The round ends with this slice.
		defer func() {
			pr.inRound = false
			clear(pr.fresh)
		}()
	}
	w := ctx.Window(FeaturesStore)
	visited, passed := 0, 0
	defer func() {
		if pr.sweeps != nil {
			pr.sweeps.WithLabelValues("visited").Add(float64(visited))
			pr.sweeps.WithLabelValues("passed").Add(float64(passed))
		}
	}()
	for _, it := range batch {
		if it.fresh && !expire {
			passed++
			continue
		}
		r, err := decodeRecord(it.value, pr.names)
		if err != nil {
			return err
		}
		if r.Erased != 0 && r.queued() == 0 && now.Sub(time.UnixMilli(r.Erased)) >= pr.o.ErasureGrace {
			// A marker a restart left behind (pr.markers is not kept).
			if err := store.Delete(it.id); err != nil {
				return err
			}
			continue
		}
		if r.P.ID == "" || r.MergedInto != "" || r.busy() {
			continue
		}
		if it.fresh {
			passed++
		} else {
			visited++
		}
		s := &step{pr: pr, ctx: ctx, id: string(it.id), r: r, ts: ctx.StreamTime()}
		var changed, moved bool
		if !it.fresh {
			if changed, err = s.computeHistory(); err != nil {
				return err
			}
		}
		if expire {
			floor, err := set.Expire(w, it.id, ctx.StreamTime(), r.TileFloor)
			if err != nil {
				return err
			}
			if floor != r.TileFloor {
				r.TileFloor, changed = floor, true
			}
		}
		if !it.fresh {
			if moved, err = s.evaluate(ctx.StreamTime(), "time:"+strconv.FormatInt(ctx.StreamTime().UnixMilli(), 10)); err != nil {
				return err
			}
		}
		if changed || moved {
			pr.buf = r.appendTo(pr.buf[:0])
			if err := store.Put(it.id, pr.buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// evaluated notes that an event or a merge evaluated profile id with the
// definitions in force, for the round under way to pass it by.
func (pr *profiler) evaluated(id string) {
	if !pr.inRound {
		return
	}
	set, aud := pr.features(), pr.audiences()
	if set != pr.freshFeatures || aud != pr.freshAudiences {
		// Evaluated before the change are no longer current.
		clear(pr.fresh)
		pr.freshFeatures, pr.freshAudiences = set, aud
	}
	if pr.fresh == nil {
		pr.fresh = make(map[string]struct{})
	}
	pr.fresh[id] = struct{}{}
}

// onlyFeature returns the one-feature Set of key in set.
func (pr *profiler) onlyFeature(set *features.Set, key string) (*features.Set, error) {
	if pr.onlyOf != set {
		pr.onlyOf, pr.only = set, make(map[string]*features.Set)
	}
	if o, ok := pr.only[key]; ok {
		return o, nil
	}
	o, err := set.Only(key)
	if err != nil {
		return nil, err
	}
	pr.only[key] = o
	return o, nil
}

// features returns the task's own copy of the feature set in force, or
// nil. The copy stays the same until the definitions change, so callers
// may cache what they derive from it by its pointer.
func (pr *profiler) features() *features.Set {
	if pr.o.Features == nil {
		return nil
	}
	s := pr.o.Features()
	if s == nil {
		return nil
	}
	if s != pr.setOf {
		pr.setOf, pr.set = s, s.Clone()
	}
	return pr.set
}

func (pr *profiler) Process(ctx *topology.Context, rec topology.Record) error {
	o, err := pr.c.decodeOp(rec.Value)
	if err != nil {
		return err
	}
	store := ctx.KeyValue(ProfilesStore)
	key := []byte(o.Profile)
	// The view is compared or decoded at once, before anything else
	// touches the store.
	raw, err := store.View(key)
	if err != nil {
		return err
	}
	r := pr.recs.take(o.Profile, raw)
	switch {
	case r != nil:
	case raw != nil:
		if r, err = decodeRecord(raw, pr.names); err != nil {
			return fmt.Errorf("profile %s: %w", o.Profile, err)
		}
	default:
		r = &record{TileFloor: features.NoTiles}
	}
	s := &step{pr: pr, ctx: ctx, id: o.Profile, r: r, ts: rec.Timestamp}
	if err := s.migrateQueue(); err != nil {
		return err
	}
	if err := s.handle(o, rec.Value); err != nil {
		return fmt.Errorf("profile %s, %s: %w", o.Profile, o.Kind, err)
	}
	// Replay what waited while the profile was busy, until it is busy
	// again or the queue is empty. What waited behind an erasure meets
	// the marker.
	for r.queued() > 0 && !r.busy() && (r.P.ID != "" || r.Erased != 0) {
		next, ok, err := s.dequeue()
		if err != nil {
			return err
		}
		if !ok {
			break // the ops counted were lost to a restore (dequeue)
		}
		q, err := pr.c.decodeOp(next)
		if err != nil {
			return err
		}
		if err := s.handle(q, next); err != nil {
			return fmt.Errorf("profile %s, queued %s: %w", o.Profile, q.Kind, err)
		}
	}
	if r.Erased != 0 && s.erasedNow {
		pr.markers = append(pr.markers, marker{id: o.Profile, erasedAt: time.UnixMilli(r.Erased)})
	}
	pr.buf = r.appendTo(pr.buf[:0])
	if err := store.Put(key, pr.buf); err != nil {
		return err
	}
	pr.recs.put(o.Profile, r, pr.buf)
	return nil
}

// step is the processing of one op (and the queue it releases) for one
// profile.
type step struct {
	pr  *profiler
	ctx *topology.Context
	id  string
	r   *record
	ts  time.Time
	// erasedNow says this step erased the profile.
	erasedNow bool
}

func (s *step) handle(o op, raw []byte) error {
	r := &s.r.P
	creates := o.Kind == opEvent && o.Created != 0
	switch {
	case s.r.MergedInto != "" && o.Kind == opErase && o.Peer != "":
		// This profile was merged into one being erased: its redirect goes.
		s.becomeMarker(o.Created)
		return nil
	case s.r.MergedInto != "":
		return s.redirect(o)
	case s.r.Erased != 0 && !creates:
		return s.afterErasure(o)
	case r.ID == "" && creates:
		// A new profile, perhaps under the id of one erased before: an
		// event received after the erasure, whose identifiers were
		// unlinked, creates it afresh.
		s.r.Erased = 0
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
		return s.enqueue(raw)
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
		// The loser computed its history before exporting; the winner
		// does its own before taking the loser's events and tiles, or
		// the loser's events would count twice.
		if _, err := s.computeHistory(); err != nil {
			return err
		}
		// The loser's events join this profile's timeline.
		events := q.Recent
		q.Recent = nil
		r.Absorb(&q, 0)
		if err := s.recordEvents(events...); err != nil {
			return err
		}
		if set := s.pr.features(); set != nil && len(o.Features) > 0 {
			floor, err := set.Import(s.ctx.Window(FeaturesStore), []byte(s.id), o.Features)
			if err != nil {
				return err
			}
			s.r.TileFloor = min(s.r.TileFloor, floor)
		}
		s.r.Absorbing = ""
		if _, err := s.evaluate(s.ctx.StreamTime(), "absorb:"+o.Peer); err != nil {
			return err
		}
		s.pr.evaluated(s.id)
		return nil
	}
	if s.r.busy() {
		return s.enqueue(raw)
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
	case opErase:
		return s.erase(o)
	}
	return fmt.Errorf("unexpected %s for a live profile", o.Kind)
}

// computeHistory computes the features defined since this profile last
// saw the feature set from its recent events (the profile keeps the last
// profiles.recent_events of them; older history needs a replay), and
// forgets features no longer defined. It reports whether the record
// changed.
func (s *step) computeHistory() (bool, error) {
	migrated := len(s.r.P.Recent) > 0
	if err := s.migrateRecent(); err != nil {
		return false, err
	}
	set := s.pr.features()
	if set == nil {
		return migrated, nil
	}
	infos := set.Features()
	changed := migrated
	w := s.ctx.Window(FeaturesStore)
	// A new profile has every feature to compute and no history: one look
	// at its timeline spares a scan per feature.
	var empty, looked bool
	for _, in := range infos {
		if s.r.Computed[in.Key] {
			continue
		}
		if !looked {
			// A zero count is an empty timeline without a Pebble
			// seek (3 % of the hub's CPU when every new profile
			// looked): the count runs ahead of the store when an
			// event is redelivered, never behind it, except after
			// an at-least-once crash between the two stores'
			// changelog writes, until the event comes again.
			empty = s.r.Timeline == 0
			if !empty {
				var err error
				if empty, err = s.timelineEmpty(); err != nil {
					return false, err
				}
			}
			looked = true
		}
		if err := s.replayFeature(set, in.Key, w, empty); err != nil {
			return false, err
		}
		if s.r.Computed == nil {
			s.r.Computed = make(map[string]bool)
		}
		s.r.Computed[in.Key] = true
		changed = true
	}
	if len(s.r.Computed) > len(infos) {
		live := make(map[string]bool, len(infos))
		for _, in := range infos {
			live[in.Key] = true
		}
		for k := range s.r.Computed {
			if !live[k] {
				delete(s.r.Computed, k)
				changed = true
			}
		}
	}
	return changed, nil
}

// replayFeature applies the profile's timeline to the feature key of set,
// unless the timeline is known to be empty.
func (s *step) replayFeature(set *features.Set, key string, w *state.Window, empty bool) error {
	if empty {
		return nil
	}
	only, err := s.pr.onlyFeature(set, key)
	if err != nil {
		return err
	}
	return s.eachTimeline(func(raw []byte) error {
		v, err := s.pr.hp.ParseBytes(raw)
		if err != nil {
			return fmt.Errorf("parsing a recent event of %s: %w", s.id, err)
		}
		at := time.UnixMilli(profile.ParseMillis(string(v.GetStringBytes("timestamp"))))
		s.r.TileFloor = features.UpdateFloor(s.r.TileFloor, v)
		// Each event is applied as of its own time: history is not late.
		_, err = only.Update(w, []byte(s.id), v, at)
		return err
	})
}

// redirect sends what reached a merged profile on to the profile it folded
// into, which is earlier, so redirects end.
func (s *step) redirect(o op) error {
	to := s.r.MergedInto
	switch o.Kind {
	case opEvent, opOffer, opDrop, opErase:
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
	if _, err := s.computeHistory(); err != nil {
		return err
	}
	if set := s.pr.features(); set != nil {
		s.r.TileFloor = features.UpdateFloor(s.r.TileFloor, v)
		if _, err := set.Update(s.ctx.Window(FeaturesStore), []byte(s.id), v, s.ctx.StreamTime()); err != nil {
			return err
		}
	}
	r.ApplyEvent(v, o.Event, at, profile.Options{PurchaseEvent: s.pr.o.PurchaseEvent, SpendProperty: s.pr.o.SpendProperty})
	if err := s.recordEvent(o.Event, at); err != nil {
		return err
	}
	now := s.ctx.StreamTime()
	if err := s.triggers(v, o.Event, now); err != nil {
		return err
	}
	if _, err := s.evaluate(now, string(v.GetStringBytes("messageId"))); err != nil {
		return err
	}
	s.pr.evaluated(s.id)
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
	if _, err := s.computeHistory(); err != nil {
		return err
	}
	// The events travel with the state, and leave this store.
	exported := *r
	events, err := s.takeTimeline()
	if err != nil {
		return err
	}
	exported.Recent = events
	absorb := op{Kind: opAbsorb, Profile: o.Peer, Peer: s.id, State: exported.AppendBinary(nil)}
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
	for {
		raw, ok, err := s.dequeue()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
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
	b, err := s.pr.c.encodeOp(o, s.ctx)
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

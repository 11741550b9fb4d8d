package identity_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/regulation"
	"github.com/tessera-cdp/tessera/topology"
)

// erasureHub is a hub whose identity stage filters through an erasure
// list, as `tessera run` wires it.
type erasureHub struct {
	*hub
	list *regulation.Erasures
	regs []regulation.Regulation
}

func newErasureHub(t *testing.T, partitions int32, ident config.Identity) *erasureHub {
	list := &regulation.Erasures{}
	h := newHubOpts(t, partitions, ident, nil, nil, func(o *identity.Options) {
		o.ErasedAt = list.ErasedAt
		o.ErasureGrace = time.Minute
	})
	return &erasureHub{hub: h, list: list}
}

// erase does what POST /v1/regulations does for a delete of ids: the
// erasure list first, then one ERASE request per identifier.
func (h *erasureHub) erase(ids []string, at time.Time) {
	h.t.Helper()
	reg := regulation.Regulation{ID: fmt.Sprintf("reg%d", len(h.regs)), Type: regulation.Delete, CreatedAt: at}
	for _, s := range ids {
		id, err := profile.ParseIdent(s)
		if err != nil {
			h.t.Fatal(err)
		}
		reg.Erased = append(reg.Erased, regulation.Hash(id))
	}
	h.regs = append(h.regs, reg)
	h.list.Update(h.regs)
	for _, s := range ids {
		id, _ := profile.ParseIdent(s)
		topic, key, value, err := identity.EraseRequest("t", id, reg.ID, at)
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.d.Pipe(topic, key, value, at); err != nil {
			h.t.Fatal(err)
		}
	}
}

// receivedAt is the time the property test's event seq was received.
func receivedAt(seq int) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq+1) * time.Second)
}

// withReceivedAt stamps event as ingest does.
func withReceivedAt(event string, seq int) string {
	return `{"receivedAt":"` + receivedAt(seq).Format(time.RFC3339) + `",` + event[1:]
}

// erasure is one erasure of the reference: the identifiers erased and
// when.
type erasure struct {
	ids map[string]bool
	at  time.Time
}

// survivors is the reference's filter: the events no erasure drops, those
// that happened and were received after every erasure of one of their
// identifiers (times are the receipts; the timestamp is in the event).
func survivors(rules *identity.Rules, events []string, times []time.Time, erasures []erasure) []string {
	h := newParse()
	var out []string
	for i, e := range events {
		known := times[i]
		if ts, err := time.Parse(time.RFC3339, between(e, `"timestamp":"`, `"`)); err == nil && ts.Before(known) {
			known = ts
		}
		dropped := false
		for _, er := range erasures {
			if known.After(er.at) {
				continue
			}
			for _, id := range h.extract(rules, e) {
				if er.ids[id] {
					dropped = true
				}
			}
		}
		if !dropped {
			out = append(out, e)
		}
	}
	return out
}

// TestErasurePropertyAgainstReference erases people while the events
// that made them are still in flight, interleaved at random across
// partitions with merges under way, and compares the hub at quiescence
// with a union-find over the events no erasure drops. The reference's
// erasure takes the whole connected component of the identifier named,
// over every event sent so far (what the API resolves once the hub has
// caught up), received until the erasure. Some events are read late, as
// under consumer lag: after the erasure, though received before it.
// Events received after an erasure are sent once it is done: they are
// new data, and may bring an identifier back as a new profile.
func TestErasurePropertyAgainstReference(t *testing.T) {
	seeds := 8
	if s := os.Getenv("TESSERA_IDENTITY_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	loose := config.DefaultIdentity()
	for i := range loose.Types {
		loose.Types[i].Limit = 1000
	}
	loose.MaxIdentifiers = 10000
	rules, err := identity.NewRules(loose)
	if err != nil {
		t.Fatal(err)
	}
	for _, partitions := range []int32{1, 3, 12} {
		for seed := 1; seed <= seeds; seed++ {
			name := fmt.Sprintf("p%d/seed%d", partitions, seed)
			t.Run(name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(seed), uint64(partitions)+100))
				h := newErasureHub(t, partitions, loose)
				pick := picker(int64(seed))
				var events []string
				var times []time.Time
				var erasures []erasure
				// late holds events received but not yet read from the
				// events topic (consumer lag): they reach the identity
				// stage after the next erasure, or at the end.
				var late []string
				for i := 0; i < 300; i++ {
					e := withReceivedAt(genEvent(r, 25, i), i)
					events = append(events, e)
					times = append(times, receivedAt(i))
					if r.IntN(8) == 0 {
						late = append(late, e)
					} else {
						h.send(e)
					}
					if r.IntN(10) == 0 {
						if err := h.d.Drain(pick); err != nil {
							t.Fatal(err)
						}
					}
					if r.IntN(60) != 0 {
						continue
					}
					// Erase the person of a random earlier event, with
					// whatever is still in flight.
					live := survivors(rules, events, times, erasures)
					comp, _ := components(rules, live)
					target := newParse().extract(rules, live[r.IntN(len(live))])[0]
					ids := map[string]bool{}
					var list []string
					for id, root := range comp {
						if root == comp[target] {
							ids[id] = true
							list = append(list, id)
						}
					}
					slices.Sort(list)
					at := receivedAt(i)
					erasures = append(erasures, erasure{ids: ids, at: at})
					h.erase(list, at)
					for _, e := range late {
						h.send(e)
					}
					late = nil
					if err := h.d.Drain(pick); err != nil {
						t.Fatal(err)
					}
				}
				for _, e := range late {
					h.send(e)
				}
				if err := h.d.Drain(pick); err != nil {
					t.Fatal(err)
				}
				if len(erasures) == 0 {
					t.Skip("this seed erased nobody")
				}
				live := survivors(rules, events, times, erasures)
				s := h.state()
				s.check(t, rules, len(live))
				compareComponents(t, rules, s, live)
				compareTimelines(t, h.hub, rules, s, live)
				checkDedupe(t, h.hub, s)
				// Once the grace has passed, nothing of the erased is left:
				// every record is a live profile or a redirect to one.
				if err := h.d.AdvanceWallClock(time.Hour); err != nil {
					t.Fatal(err)
				}
				checkNoMarkers(t, h.hub)
				if t.Failed() {
					t.Logf("%d erasures; reproduce: go test -run 'TestErasurePropertyAgainstReference/%s' ./processor/identity/", len(erasures), name)
				}
			})
		}
	}
}

// checkDedupe asserts that every remembered messageId is under an
// identifier a live profile holds: an erased identifier's are deleted.
func checkDedupe(t *testing.T, h *hub, s snapshot) {
	t.Helper()
	for _, id := range h.d.Tasks() {
		if id.Group != 0 {
			continue
		}
		err := h.d.TaskKeyValue(id, identity.DedupeStore).Range(nil, nil, func(k, _ []byte) error {
			routing, _, _ := strings.Cut(string(k), "\x00")
			if s.profileOf(routing) == nil {
				t.Errorf("a messageId is remembered under %s, which no live profile holds", routing)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkNoMarkers asserts that every profiles record is a live profile or
// a chain of redirects ending at one.
func checkNoMarkers(t *testing.T, h *hub) {
	t.Helper()
	type rec struct {
		live   bool
		merged string
	}
	all := map[string]rec{}
	for _, id := range h.d.Tasks() {
		if id.Group != 1 {
			continue
		}
		err := h.d.TaskKeyValue(id, identity.ProfilesStore).Range(nil, nil, func(k, v []byte) error {
			p, merged, err := identity.LoadProfile(v)
			all[string(k)] = rec{live: p != nil, merged: merged}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, r := range all {
		cur, hops := r, 0
		for !cur.live && cur.merged != "" && hops < 64 {
			cur, hops = all[cur.merged], hops+1
		}
		if !cur.live {
			t.Errorf("profiles record %s is neither a live profile nor a redirect to one", k)
		}
	}
}

// TestEraseRemovesEveryTrace erases a person merged from two profiles on
// different partitions and checks each store's changelog for the
// tombstones, the features store for tiles, and the activations for the
// notice.
func TestEraseRemovesEveryTrace(t *testing.T) {
	ident := config.DefaultIdentity()
	set, err := features.Compile([]config.Feature{{Name: "orders_7d", Event: "Order Completed", Agg: "count", Window: "7d"}}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list := &regulation.Erasures{}
	h := newHubOpts(t, 4, ident, &set, nil, func(o *identity.Options) {
		o.ErasedAt = list.ErasedAt
		o.ErasureGrace = time.Minute
	})
	eh := &erasureHub{hub: h, list: list}
	for i, e := range []string{
		`{"type":"track","event":"Order Completed","anonymousId":"anon-1","messageId":"m1","timestamp":"2026-01-01T00:00:01Z"}`,
		`{"type":"identify","userId":"jane","traits":{"email":"jane@example.com"},"messageId":"m2","timestamp":"2026-01-01T00:00:02Z"}`,
		`{"type":"track","event":"Order Completed","userId":"jane","anonymousId":"anon-1","messageId":"m3","timestamp":"2026-01-01T00:00:03Z"}`,
		`{"type":"track","event":"Order Completed","userId":"bob","messageId":"m4","timestamp":"2026-01-01T00:00:04Z"}`,
	} {
		h.send(withReceivedAt(e, i))
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	before := h.state()
	jane := before.profileOf("user_id:jane")
	if jane == nil || len(jane.MergedFrom) != 1 || jane.Events != 3 {
		t.Fatalf("want jane merged from anon-1 with 3 events, got %+v", jane)
	}
	for _, topic := range []string{"identities", "dedupe", "profiles", "features", "timeline"} {
		h.d.Output(topology.ChangelogTopic("t", topic)) // forget what came before
	}
	h.d.Output("t.activations")
	at := receivedAt(10)
	// The API resolves the identifier named to the profile and erases
	// all its identifiers.
	eh.erase([]string{"email:jane@example.com", "user_id:jane", "anonymous_id:anon-1"}, at)
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	// A late event of hers, received before the erasure, and a new one
	// from after it.
	h.send(withReceivedAt(`{"type":"track","event":"Order Completed","userId":"jane","messageId":"m5","timestamp":"2026-01-01T00:00:05Z"}`, 5))
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}

	after := h.state()
	for _, id := range []string{"user_id:jane", "email:jane@example.com", "anonymous_id:anon-1"} {
		if p := after.profileOf(id); p != nil {
			t.Errorf("%s is still held by %s", id, p.ID)
		}
		if o, ok := after.owners[id]; ok {
			t.Errorf("%s is still owned by %s", id, o)
		}
	}
	if bob := after.profileOf("user_id:bob"); bob == nil || bob.Events != 1 {
		t.Errorf("bob was touched: %+v", bob)
	}
	tombstones := func(store string) map[string]bool {
		out := map[string]bool{}
		for _, r := range h.d.Output(topology.ChangelogTopic("t", store)) {
			if r.Value == nil {
				out[string(r.Key)] = true
			}
		}
		return out
	}
	ids := tombstones(identity.IdentitiesStore)
	for _, id := range []string{"user_id:jane", "email:jane@example.com", "anonymous_id:anon-1"} {
		if !ids[id] {
			t.Errorf("no tombstone for %s in the identities changelog (got %v)", id, ids)
		}
	}
	if d := tombstones(identity.DedupeStore); len(d) != 3 {
		t.Errorf("want tombstones for the 3 messageIds of jane's routing identifiers, got %d: %v", len(d), d)
	}
	if f := tombstones(identity.FeaturesStore); len(f) == 0 {
		t.Error("no tombstone in the features changelog")
	}
	tiles := map[bool]int{} // by whether the key names jane's profile
	for _, task := range h.d.Tasks() {
		if task.Group != 1 {
			continue
		}
		err := h.d.TaskKeyValue(task, identity.FeaturesStore).Range(nil, nil, func(k, _ []byte) error {
			tiles[strings.Contains(string(k), jane.ID)]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if tiles[true] != 0 || tiles[false] == 0 {
		t.Errorf("want no tile of the erased profile and bob's kept, got %d and %d", tiles[true], tiles[false])
	}
	if tl := tombstones(identity.TimelineStore); len(tl) != 3 {
		t.Errorf("want tombstones for jane's 3 timeline events, got %d", len(tl))
	}
	for _, task := range h.d.Tasks() {
		if task.Group != 1 {
			continue
		}
		for _, id := range append([]string{jane.ID}, jane.MergedFrom...) {
			if evs, err := identity.ReadTimeline(h.d.TaskKeyValue(task, identity.TimelineStore), id, 100); err != nil || len(evs) != 0 {
				t.Errorf("profile %s's timeline holds %d events after the erasure (%v)", id, len(evs), err)
			}
		}
	}
	var notices int
	for _, r := range h.d.Output("t.activations") {
		var a identity.Activation
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatal(err)
		}
		if a.Type != "profile_deleted" {
			continue
		}
		notices++
		var n struct {
			ID          string
			Identifiers []struct{ Type, Value string }
		}
		if err := json.Unmarshal(a.Profile, &n); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, x := range n.Identifiers {
			got[x.Type+":"+x.Value] = true
		}
		if n.ID != jane.ID || a.ProfileID != jane.ID || len(got) != 3 || !got["user_id:jane"] || !got["email:jane@example.com"] || !got["anonymous_id:anon-1"] {
			t.Errorf("the notice must name jane's profile and her 3 identifiers: %s", a.Profile)
		}
	}
	if notices != 1 {
		t.Errorf("want 1 profile_deleted activation, got %d", notices)
	}
	if err := h.d.AdvanceWallClock(time.Hour); err != nil {
		t.Fatal(err)
	}
	profiles := tombstones(identity.ProfilesStore)
	for _, id := range append([]string{jane.ID}, jane.MergedFrom...) {
		if !profiles[id] {
			t.Errorf("no tombstone for profile %s in the profiles changelog (got %v)", id, profiles)
		}
	}
	checkNoMarkers(t, h)

	// An old event of hers, imported after the erasure, stays out.
	h.send(withReceivedAt(`{"type":"track","event":"Order Completed","userId":"jane","messageId":"m7","timestamp":"2026-01-01T00:00:07Z"}`, 15))
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	if p := h.state().profileOf("user_id:jane"); p != nil {
		t.Errorf("an old event imported after the erasure brought her back: %+v", p)
	}

	// After the erasure, the same person may come back: a new profile.
	h.send(withReceivedAt(`{"type":"identify","userId":"jane","messageId":"m6","timestamp":"2026-01-01T00:00:20Z"}`, 20))
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	if p := h.state().profileOf("user_id:jane"); p == nil || p.Events != 1 {
		t.Errorf("an event received after the erasure must make a new profile with it alone, got %+v", p)
	}
}

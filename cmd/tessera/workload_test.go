package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// workloadConfig is the configuration of the scaled and replay tests: two
// features and an audience over them, so that profiles, features and
// audience memberships all depend on every event being counted once.
const workloadConfig = `
app: %s
kafka:
  partitions: %d
processing:
  commit_interval: 100ms
  session_timeout: %s
features:
  - {name: orders_7d, event: Order Completed, agg: count, window: 7d}
  - {name: spend_7d, event: Order Completed, agg: sum, property: revenue, window: 7d}
audiences:
  - {name: big_spenders, rule: "features.spend_7d >= 100"}
`

// wlEvent is one generated event: its routing key and its JSON.
type wlEvent struct {
	key, value string
}

// wlCustomer is what one customer's profile must show once every event of
// the workload so far is processed: the reference the tests compare with.
type wlCustomer struct {
	idents      []string
	events      int64
	orders      int64
	spend       float64
	plan        string
	planAt      time.Time
	eventCounts map[string]int64
}

// workload generates customers' events: an anonymous page view, an
// identify that ties the anonymous id to a user id and an email, orders,
// and for some customers a second device whose event carries the email in
// context.traits, which merges it into the same profile. Identifiers of
// different customers never meet, so each customer ends as one profile.
type workload struct {
	rng       *rand.Rand
	base      time.Time
	seq       int
	customers []*wlCustomer
}

func newWorkload(seed uint64, customers int) *workload {
	w := &workload{rng: rand.New(rand.NewPCG(seed, 1)), base: time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)}
	for range customers {
		w.customers = append(w.customers, &wlCustomer{eventCounts: map[string]int64{}})
	}
	return w
}

func (w *workload) ts() string {
	w.seq++
	return w.base.Add(time.Duration(w.seq) * 100 * time.Millisecond).Format(time.RFC3339Nano)
}

func (w *workload) at(ts string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, ts)
	return t
}

func addIdent(c *wlCustomer, id string) {
	for _, x := range c.idents {
		if x == id {
			return
		}
	}
	c.idents = append(c.idents, id)
}

// batch returns events for every customer, in a shuffled order (so a
// customer's events interleave with others'); round tells batches apart.
func (w *workload) batch(round int) []wlEvent {
	var out []wlEvent
	for i, c := range w.customers {
		anon, user, email := fmt.Sprintf("a-%d", i), fmt.Sprintf("u-%d", i), fmt.Sprintf("c%d@example.test", i)
		var evs []wlEvent
		msg := func() string { return fmt.Sprintf("r%d-c%d-%d", round, i, len(evs)) }
		count := func(name string) {
			c.events++
			c.eventCounts[name]++
		}
		if round == 0 {
			ts := w.ts()
			evs = append(evs, wlEvent{anon, fmt.Sprintf(`{"type":"page","anonymousId":%q,"name":"Home","messageId":%q,"timestamp":%q}`, anon, msg(), ts)})
			count("page")
			addIdent(c, "anonymous_id:"+anon)
		}
		plan := []string{"free", "pro", "team"}[w.rng.IntN(3)]
		ts := w.ts()
		evs = append(evs, wlEvent{user, fmt.Sprintf(`{"type":"identify","userId":%q,"anonymousId":%q,"traits":{"email":%q,"plan":%q},"messageId":%q,"timestamp":%q}`, user, anon, email, plan, msg(), ts)})
		count("identify")
		addIdent(c, "user_id:"+user)
		addIdent(c, "email:"+email)
		if t := w.at(ts); t.After(c.planAt) {
			c.plan, c.planAt = plan, t
		}
		for range w.rng.IntN(4) {
			rev := float64(5 + w.rng.IntN(60))
			evs = append(evs, wlEvent{user, fmt.Sprintf(`{"type":"track","userId":%q,"event":"Order Completed","properties":{"revenue":%v},"messageId":%q,"timestamp":%q}`, user, rev, msg(), w.ts())})
			count("Order Completed")
			c.orders++
			c.spend += rev
		}
		if i%3 == 0 {
			dev := fmt.Sprintf("b-%d-%d", i, round)
			evs = append(evs, wlEvent{dev, fmt.Sprintf(`{"type":"track","anonymousId":%q,"event":"Viewed","context":{"traits":{"email":%q}},"messageId":%q,"timestamp":%q}`, dev, email, msg(), w.ts())})
			count("Viewed")
			addIdent(c, "anonymous_id:"+dev)
		}
		out = append(out, evs...)
	}
	// Shuffle whole customers' sequences apart but keep each customer's
	// own order: interleave by picking a random customer's next event.
	byKeyOrder := make(map[string][]wlEvent)
	var owners []string
	for _, e := range out {
		owner := customerOf(e.value)
		if _, ok := byKeyOrder[owner]; !ok {
			owners = append(owners, owner)
		}
		byKeyOrder[owner] = append(byKeyOrder[owner], e)
	}
	var mixed []wlEvent
	for len(owners) > 0 {
		j := w.rng.IntN(len(owners))
		o := owners[j]
		mixed = append(mixed, byKeyOrder[o][0])
		byKeyOrder[o] = byKeyOrder[o][1:]
		if len(byKeyOrder[o]) == 0 {
			owners = append(owners[:j], owners[j+1:]...)
		}
	}
	return mixed
}

// customerOf returns the customer index part of an event's messageId.
func customerOf(value string) string {
	id := between(value, `"messageId":"`, `"`)
	parts := strings.Split(id, "-")
	return parts[1]
}

// produce writes events to topic keyed by their routing identifier, with
// the given record timestamp (zero: now).
func produceEvents(t *testing.T, brokers, topic string, evs []wlEvent, stamp time.Time) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(e.key), Value: []byte(e.value), Timestamp: stamp}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing events: %v", err)
	}
}

// profileAnswer is the part of a profile answer that must not depend on
// timing, partitions or instances: everything but the profile id and the
// merge history (which profile absorbed which depends on arrival order),
// and the predictions (fitted on a schedule).
type profileAnswer struct {
	Identifiers []string
	Traits      map[string]json.RawMessage
	Features    map[string]any
	Audiences   []string
	Events      int64
	EventCounts map[string]int64
	FirstSeen   string
	LastSeen    string
}

func (a profileAnswer) String() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// readProfile asks base for the profile of ident; ok is false when the
// answer is not a 200 profile.
func readProfile(t *testing.T, base, token, ident string) (profileAnswer, string, bool) {
	code, body := getAuth(t, base+"/v1/profiles/"+ident, token)
	if code != 200 {
		return profileAnswer{}, fmt.Sprintf("%d %s", code, body), false
	}
	_, a := decodeProfileAnswer(t, base, ident, body)
	return a, body, true
}

// decodeProfileAnswer decodes the profile API's answer for ident from
// base: the profile's id and the part compared with the reference.
func decodeProfileAnswer(t *testing.T, base, ident, body string) (string, profileAnswer) {
	var v struct {
		ID          string `json:"id"`
		Identifiers []struct{ Type, Value string }
		Traits      map[string]json.RawMessage `json:"traits"`
		Features    map[string]any             `json:"features"`
		Audiences   []string                   `json:"audiences"`
		Events      int64                      `json:"events"`
		EventCounts map[string]int64           `json:"event_counts"`
		FirstSeen   string                     `json:"first_seen"`
		LastSeen    string                     `json:"last_seen"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("profile %s from %s: %v: %s", ident, base, err, body)
	}
	a := profileAnswer{Traits: v.Traits, Features: v.Features, Audiences: v.Audiences, Events: v.Events,
		EventCounts: v.EventCounts, FirstSeen: v.FirstSeen, LastSeen: v.LastSeen}
	for _, id := range v.Identifiers {
		a.Identifiers = append(a.Identifiers, id.Type+":"+id.Value)
	}
	sort.Strings(a.Identifiers)
	return v.ID, a
}

// matches says how answer a differs from the reference c, or "".
func (c *wlCustomer) mismatch(a profileAnswer) string {
	want := append([]string(nil), c.idents...)
	sort.Strings(want)
	var diffs []string
	if fmt.Sprint(a.Identifiers) != fmt.Sprint(want) {
		diffs = append(diffs, fmt.Sprintf("identifiers %v, want %v", a.Identifiers, want))
	}
	if a.Events != c.events {
		diffs = append(diffs, fmt.Sprintf("events %d, want %d", a.Events, c.events))
	}
	if fmt.Sprint(a.EventCounts) != fmt.Sprint(c.eventCounts) {
		diffs = append(diffs, fmt.Sprintf("event counts %v, want %v", a.EventCounts, c.eventCounts))
	}
	if got := string(a.Traits["plan"]); got != fmt.Sprintf("%q", c.plan) {
		diffs = append(diffs, fmt.Sprintf("plan %s, want %q", got, c.plan))
	}
	if got, _ := a.Features["orders_7d"].(float64); int64(got) != c.orders {
		diffs = append(diffs, fmt.Sprintf("orders_7d %v, want %d", a.Features["orders_7d"], c.orders))
	}
	if got, _ := a.Features["spend_7d"].(float64); got != c.spend {
		diffs = append(diffs, fmt.Sprintf("spend_7d %v, want %v", a.Features["spend_7d"], c.spend))
	}
	wantAud := "[]"
	if c.spend >= 100 {
		wantAud = "[big_spenders]"
	}
	if fmt.Sprint(a.Audiences) != wantAud {
		diffs = append(diffs, fmt.Sprintf("audiences %v, want %s", a.Audiences, wantAud))
	}
	return strings.Join(diffs, "; ")
}

// awaitReference polls base until every customer's profile matches the
// reference, and returns the answers.
func awaitReference(t *testing.T, w *workload, base, token string, timeout time.Duration) map[string]profileAnswer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	out := make(map[string]profileAnswer, len(w.customers))
	for i, c := range w.customers {
		ident := fmt.Sprintf("user_id:u-%d", i)
		for {
			a, body, ok := readProfile(t, base, token, ident)
			why := body
			if ok {
				if why = c.mismatch(a); why == "" {
					out[ident] = a
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s from %s never matched the reference: %s", ident, base, why)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	return out
}

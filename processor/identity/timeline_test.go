package identity_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
)

// TestTimelineKeepsTheNewestThroughLateAndRepeatedEvents sends random
// runs of in-order, late and repeated events (without a messageId, so
// that the identity stage lets repeats through, as a re-import past the
// dedupe window does) and checks each profile's timeline against a
// reference: the newest of its distinct events. A trim of an exact count
// reads only what it deletes, so a repeat counted as new would make it
// delete too many. It also checks the record's count where it claims to
// be exact.
func TestTimelineKeepsTheNewestThroughLateAndRepeatedEvents(t *testing.T) {
	const keep = 8
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, recount := range []struct {
		name  string
		every int64
	}{{"recount now and then", 32}, {"recount at every trim", 1}, {"never recount", 1 << 62}} {
		for seed := uint64(1); seed <= 6; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", recount.name, seed), func(t *testing.T) {
				defer identity.SetRecountEvery(recount.every)()
				timelineRun(t, seed, keep, start)
			})
		}
	}
}

// timelineRun is one run of TestTimelineKeepsTheNewestThroughLateAndRepeatedEvents.
func timelineRun(t *testing.T, seed uint64, keep int, start time.Time) {
	r := rand.New(rand.NewPCG(seed, 7))
	h := newHubOpts(t, 3, config.DefaultIdentity(), nil, nil, func(o *identity.Options) { o.RecentEvents = keep })
	users := 3
	clock := make([]time.Time, users)
	for u := range clock {
		clock[u] = start.Add(time.Hour)
	}
	used := map[int64]bool{} // event times, unique so the reference can sort by them
	distinct := make([][]string, users)
	var sent []string
	for i := range 400 {
		u := r.IntN(users)
		var ev string
		switch k := r.IntN(10); {
		case k < 2 && len(sent) > 0:
			ev = sent[r.IntN(len(sent))] // a repeat, of any user
		default:
			at := clock[u].Add(time.Duration(1+r.IntN(1000)) * time.Millisecond)
			if k < 5 {
				at = clock[u].Add(-time.Duration(r.IntN(600_000)) * time.Millisecond) // late
			} else {
				clock[u] = at
			}
			for used[at.UnixMilli()] {
				at = at.Add(time.Millisecond)
			}
			used[at.UnixMilli()] = true
			ev = fmt.Sprintf(`{"type":"track","event":"E%d","userId":"u%d","timestamp":%q}`, i, u, at.Format("2006-01-02T15:04:05.000Z"))
			distinct[u] = append(distinct[u], ev)
		}
		sent = append(sent, ev)
		h.send(ev)
		if r.IntN(4) == 0 {
			// Now and then, so that ops of several events
			// meet in the profile stage.
			if err := h.d.Drain(r.IntN); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.d.Drain(r.IntN); err != nil {
		t.Fatal(err)
	}
	s := h.state()
	for u := range users {
		p := s.profileOf(fmt.Sprintf("user_id:u%d", u))
		if p == nil {
			t.Fatalf("no profile for u%d", u)
		}
		want := slices.Clone(distinct[u])
		slices.SortFunc(want, func(a, b string) int {
			return strings.Compare(between(b, `"timestamp":"`, `"`), between(a, `"timestamp":"`, `"`))
		})
		want = want[:min(keep, len(want))]
		if gs := h.timeline(p.ID, keep); !slices.Equal(gs, want) {
			t.Errorf("u%d's timeline:\n%s\nwant\n%s", u, strings.Join(gs, "\n"), strings.Join(want, "\n"))
		}
		all := h.timeline(p.ID, 1<<20)
		if len(all) < min(keep, len(distinct[u])) || len(all) > keep+keep/4 {
			t.Errorf("u%d's timeline holds %d events of %d distinct, want %d to %d", u, len(all), len(distinct[u]), min(keep, len(distinct[u])), keep+keep/4)
		}
		v, err := h.d.TaskKeyValue(h.profileTask(p.ID), identity.ProfilesStore).Get([]byte(p.ID))
		if err != nil {
			t.Fatal(err)
		}
		count, exact, newest, err := identity.RecordTimeline(v)
		if err != nil {
			t.Fatal(err)
		}
		if !exact {
			if len(distinct[u]) > keep+keep/4 {
				// Exact from a profile's first trim on.
				t.Errorf("u%d's record counts %d timeline events after trims, not exactly", u, count)
			}
			continue
		}
		if count != len(all) {
			t.Errorf("u%d's record counts %d timeline events as exact, the store holds %d", u, count, len(all))
		}
		if len(all) > 0 {
			if at := profile.ParseMillis(between(all[0], `"timestamp":"`, `"`)); at > newest {
				t.Errorf("u%d's newest event is at %d, after the record's bound %d", u, at, newest)
			}
		}
	}
}

// TestTimelineRecountMendsACountAheadOfTheStore: a count ahead of the
// store, as an at-least-once crash can restore one, makes the trims that
// read only what they delete keep fewer events than the limit, until a
// trim that counts again.
func TestTimelineRecountMendsACountAheadOfTheStore(t *testing.T) {
	const keep = 8
	defer identity.SetRecountEvery(1 << 62)()
	h := newHubOpts(t, 1, config.DefaultIdentity(), nil, nil, func(o *identity.Options) { o.RecentEvents = keep })
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := 0
	send := func(n int) {
		for range n {
			at = at.Add(time.Second)
			h.send(fmt.Sprintf(`{"type":"track","event":"E%d","userId":"u1","timestamp":%q}`, sent, at.Format(time.RFC3339)))
			sent++
		}
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	send(20)
	p := h.state().profileOf("user_id:u1")
	timeline := func() int { return len(h.timeline(p.ID, 1<<20)) }
	profiles := h.d.TaskKeyValue(h.profileTask(p.ID), identity.ProfilesStore)
	v, err := profiles.Get([]byte(p.ID))
	if err != nil {
		t.Fatal(err)
	}
	if v, err = identity.BumpTimelineCount(v, 3); err != nil {
		t.Fatal(err)
	}
	if err := profiles.Put([]byte(p.ID), v); err != nil {
		t.Fatal(err)
	}
	send(2 * keep)
	if n := timeline(); n >= keep {
		t.Fatalf("with the count 3 ahead and no recount, the timeline holds %d events, want fewer than %d", n, keep)
	}
	identity.SetRecountEvery(1)
	send(keep)
	if n := timeline(); n < keep || n > keep+keep/4 {
		t.Fatalf("after a recount, the timeline holds %d events, want %d to %d", n, keep, keep+keep/4)
	}
}

// TestTimelineStoresLongEventsCompressed sends a short and a long event
// through the stages: the long one is stored compressed (its value is
// shorter than the event and starts with the marker byte), and both read
// back as sent.
func TestTimelineStoresLongEventsCompressed(t *testing.T) {
	h := newHub(t, 2, config.DefaultIdentity())
	short := `{"type":"track","event":"Short","userId":"u1","timestamp":"2026-01-01T00:00:01Z"}`
	long := `{"type":"track","event":"Long","userId":"u1","timestamp":"2026-01-01T00:00:02Z","properties":{"note":"` +
		strings.Repeat("the same words again and again, ", 20) + `"}}`
	h.send(short)
	h.send(long)
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	p := h.state().profileOf("user_id:u1")
	got := h.timeline(p.ID, 10)
	if len(got) != 2 || got[0] != long || got[1] != short {
		t.Fatalf("timeline = %.80q, want the long event, then the short one", got)
	}
	var values [][]byte
	kv := h.d.TaskKeyValue(h.profileTask(p.ID), identity.TimelineStore)
	if err := kv.Range(nil, nil, func(_, v []byte) error {
		values = append(values, bytes.Clone(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(values) != 2 {
		t.Fatalf("the timeline store holds %d values, want 2", len(values))
	}
	if values[0][0] != '{' {
		t.Errorf("the short event's value starts %q, want its JSON as is", values[0][:1])
	}
	if values[1][0] != 0x01 || len(values[1]) >= len(got[0]) {
		t.Errorf("the long event's value (%d bytes, starting %#x) is not compressed: the event is %d bytes", len(values[1]), values[1][0], len(got[0]))
	}
}

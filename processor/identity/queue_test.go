package identity_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/topology"
)

// TestQueuedOpsStayOutOfTheRecord: the events that reach a profile while
// it is busy in a merge wait in the queue store, not in its record, so
// the record does not grow with the queue; once the merge ends they are
// all applied, in order, and the queue store is empty again.
func TestQueuedOpsStayOutOfTheRecord(t *testing.T) {
	const queued = 150
	rules, err := identity.NewRules(config.DefaultIdentity())
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(t, 1, config.DefaultIdentity())
	h.send(`{"type":"track","userId":"u1","event":"Signed Up","messageId":"s1","timestamp":"2026-03-01T10:00:00Z"}`)
	h.send(`{"type":"page","anonymousId":"a1","messageId":"s2","timestamp":"2026-03-01T10:01:00Z"}`)
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	// The merge; once it has made a profile busy, events of both
	// identifiers. One partition: the merge's next ops travel behind
	// them, so the profiles stay busy while the events reach them.
	h.send(`{"type":"identify","userId":"u1","anonymousId":"a1","messageId":"m","timestamp":"2026-03-01T10:02:00Z"}`)
	pad := strings.Repeat("x", 1000)
	task := topology.TaskID{Group: 1, Partition: 0}
	// waiting counts the entries of the queue store.
	waiting := func() int {
		n := 0
		if err := h.d.TaskKeyValue(task, identity.QueueStore).Range(nil, nil, func(_, _ []byte) error {
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var maxRecord, maxQueue int
	sent := false
	watch := func(int) int {
		busy := false
		if err := h.d.TaskKeyValue(task, identity.ProfilesStore).Range(nil, nil, func(_, v []byte) error {
			maxRecord = max(maxRecord, len(v))
			b, err := identity.Busy(v)
			busy = busy || b
			return err
		}); err != nil {
			t.Fatal(err)
		}
		maxQueue = max(maxQueue, waiting())
		if busy && !sent {
			sent = true
			for i := range queued {
				id := `"userId":"u1"`
				if i%2 == 1 {
					id = `"anonymousId":"a1"`
				}
				h.send(fmt.Sprintf(`{"type":"track",%s,"event":"Step","properties":{"i":%d,"pad":%q},"messageId":"e%d","timestamp":"2026-03-01T11:%02d:%02dZ"}`, id, i, pad, i, i/60, i%60))
			}
		}
		return 0
	}
	if err := h.d.Drain(watch); err != nil {
		t.Fatal(err)
	}
	watch(0)
	t.Logf("%d ops waited at most; the largest record was %d bytes", maxQueue, maxRecord)
	// Most events wait: those of the loser from its offer on, those of
	// the winner from its acceptance on.
	if maxQueue < queued/2 {
		t.Errorf("at most %d ops waited in the queue store, want at least %d: the merge did not make the events wait", maxQueue, queued/2)
	}
	// Inline, the queue would have made a record of over 75 KB.
	if maxRecord > 4<<10 {
		t.Errorf("a profile record reached %d bytes while %d ops waited", maxRecord, maxQueue)
	}
	if n := waiting(); n != 0 {
		t.Errorf("%d ops left in the queue store at quiescence", n)
	}
	s := h.state()
	s.check(t, rules, h.events)
	p := s.profileOf("user_id:u1")
	if p == nil || len(s.live) != 1 {
		t.Fatalf("want one profile:\n%s", s.describe())
	}
	if p.Counts["Step"] != queued {
		t.Errorf("the merged profile counts %d Step events, want %d", p.Counts["Step"], queued)
	}
	// The timeline is in event time; the newest five (RecentEvents) are
	// the last sent.
	evs, err := identity.ReadTimeline(h.d.TaskKeyValue(task, identity.TimelineStore), p.ID, 5)
	if err != nil {
		t.Fatal(err)
	}
	for j, ev := range evs {
		if want := fmt.Sprintf(`"messageId":"e%d"`, queued-1-j); !strings.Contains(string(ev), want) {
			t.Errorf("timeline entry %d is %.80s…, want %s", j, ev, want)
		}
	}
}

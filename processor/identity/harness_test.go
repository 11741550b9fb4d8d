package identity_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/topology"
)

// hub is the identity and profile stages in the topology test driver.
type hub struct {
	t      testing.TB
	d      *topology.Driver
	n      int
	parts  int32
	clock  time.Time
	events int
}

func newHub(t testing.TB, partitions int32, ident config.Identity) *hub {
	return newHubWith(t, partitions, ident, nil)
}

func newHubWith(t testing.TB, partitions int32, ident config.Identity, set *features.Set) *hub {
	return newHubSwitch(t, partitions, ident, &set)
}

// newHubSwitch reads the feature set through set, so a test can define
// features while the hub runs.
func newHubSwitch(t testing.TB, partitions int32, ident config.Identity, set **features.Set) *hub {
	return newHubFull(t, partitions, ident, set, nil)
}

// newHubFull also evaluates the audiences aud points at, encoding each
// activation as JSON.
func newHubFull(t testing.TB, partitions int32, ident config.Identity, set **features.Set, aud **audience.Set) *hub {
	t.Helper()
	return newHubOpts(t, partitions, ident, set, aud, nil)
}

// newHubOpts also lets more change the options before the stages are
// added.
func newHubOpts(t testing.TB, partitions int32, ident config.Identity, set **features.Set, aud **audience.Set, more func(*identity.Options)) *hub {
	t.Helper()
	rules, err := identity.NewRules(ident)
	if err != nil {
		t.Fatal(err)
	}
	b := topology.NewBuilder()
	o := identity.Options{App: "t", Partitions: partitions, Rules: rules, DedupeWindow: 24 * time.Hour, RecentEvents: 5,
		Features: func() *features.Set {
			if set == nil {
				return nil
			}
			return *set
		},
		Audiences: func() *audience.Set {
			if aud == nil {
				return nil
			}
			return *aud
		},
		Activate: func(a identity.Activation) ([]byte, error) { return json.Marshal(a) }}
	if more != nil {
		more(&o)
	}
	if err := identity.Add(b, o); err != nil {
		t.Fatal(err)
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := topology.NewDriver(topo, topology.DriverOptions{App: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return &hub{t: t, d: d, parts: partitions, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// send pipes one event JSON into t.events as the HTTP ingest would: keyed
// by userId, else anonymousId, partitioned by that key.
func (h *hub) send(json string) {
	h.t.Helper()
	h.events++
	h.clock = h.clock.Add(time.Second)
	key := between(json, `"userId":"`, `"`)
	if key == "" {
		key = between(json, `"anonymousId":"`, `"`)
	}
	// The record's timestamp is the event's, as ingest writes it.
	ts := h.clock
	if t, err := time.Parse(time.RFC3339, between(json, `"timestamp":"`, `"`)); err == nil {
		ts = t
	}
	if err := h.d.Pipe("t.events", []byte(key), []byte(json), ts); err != nil {
		h.t.Fatal(err)
	}
}

// profileTask returns the task of the profile stage that holds profile
// id.
func (h *hub) profileTask(id string) topology.TaskID {
	return topology.TaskID{Group: 1, Partition: topology.PartitionFor([]byte(id), int(h.parts))}
}

// timeline returns up to limit of profile id's most recent events, newest
// first.
func (h *hub) timeline(id string, limit int) []string {
	h.t.Helper()
	evs, err := identity.ReadTimeline(h.d.TaskKeyValue(h.profileTask(id), identity.TimelineStore), id, limit)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = string(ev)
	}
	return out
}

func between(s, a, b string) string {
	_, after, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, b)
	return v
}

// snapshot is what the stores hold at quiescence.
type snapshot struct {
	live   map[string]*profile.Profile // by id
	owners map[string]string           // identifier → profile
	busy   []string
}

func (h *hub) state() snapshot {
	h.t.Helper()
	s := snapshot{live: map[string]*profile.Profile{}, owners: map[string]string{}}
	for _, id := range h.d.Tasks() {
		var name string
		if id.Group == 0 {
			name = identity.IdentitiesStore
		} else {
			name = identity.ProfilesStore
		}
		err := h.d.TaskKeyValue(id, name).Range(nil, nil, func(k, v []byte) error {
			if id.Group == 0 {
				o, err := identity.LoadOwner(v)
				s.owners[string(k)] = o
				return err
			}
			p, merged, err := identity.LoadProfile(v)
			if err != nil {
				return err
			}
			if p != nil && merged == "" {
				s.live[string(k)] = p
			}
			if busy, _ := identity.Busy(v); busy {
				s.busy = append(s.busy, string(k))
			}
			return nil
		})
		if err != nil {
			h.t.Fatal(err)
		}
	}
	return s
}

// profileOf returns the live profile that holds identifier id, or nil.
func (s snapshot) profileOf(id string) *profile.Profile {
	for _, p := range s.live {
		for _, x := range p.Identifiers {
			if x.String() == id {
				return p
			}
		}
	}
	return nil
}

// reporter is where check reports: a *testing.T, or a recorder that
// collects problems while a test waits for the state to settle.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ errs *[]string }

func (recorder) Helper() {}

func (r recorder) Errorf(format string, args ...any) {
	*r.errs = append(*r.errs, fmt.Sprintf(format, args...))
}

// check asserts the protocol's invariants at quiescence (doc.go).
func (s snapshot) check(t reporter, rules *identity.Rules, events int) {
	t.Helper()
	if len(s.busy) > 0 {
		t.Errorf("profiles still busy at quiescence: %v", s.busy)
	}
	holder := map[string]string{}
	var total int64
	for id, p := range s.live {
		counts := map[string]int{}
		for _, x := range p.Identifiers {
			k := x.String()
			if other, ok := holder[k]; ok {
				t.Errorf("identifier %s in two live profiles: %s and %s", k, other, id)
			}
			holder[k] = id
			counts[x.Type]++
			if counts[x.Type] > rules.Limit(x.Type) {
				t.Errorf("profile %s holds %d %s identifiers, limit %d", id, counts[x.Type], x.Type, rules.Limit(x.Type))
			}
			if s.owners[k] != id {
				t.Errorf("identifier %s is in profile %s but owned by %q", k, id, s.owners[k])
			}
		}
		total += p.Events
		var sum int64
		for _, n := range p.Counts {
			sum += n
		}
		if sum != p.Events {
			t.Errorf("profile %s: counts sum to %d, events %d", id, sum, p.Events)
		}
	}
	for k, owner := range s.owners {
		if holder[k] != owner {
			t.Errorf("identifier %s owned by %s, held by %q", k, owner, holder[k])
		}
	}
	if total != int64(events) {
		t.Errorf("live profiles count %d events, %d were sent", total, events)
	}
}

func (s snapshot) describe() string {
	var out []string
	for id, p := range s.live {
		ids := make([]string, len(p.Identifiers))
		for i, x := range p.Identifiers {
			ids[i] = x.String()
		}
		sort.Strings(ids)
		out = append(out, fmt.Sprintf("%s %v events=%d", id, ids, p.Events))
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

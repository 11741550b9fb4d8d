package identity_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
)

// genEvent makes a random event over users with overlapping identifiers.
// Cross-user events (sharing an identifier of another user) make merge
// chains; with tight limits they make conflicts.
func genEvent(r *rand.Rand, users int, seq int) string {
	u := r.IntN(users)
	f := []string{fmt.Sprintf(`"messageId":"m%d"`, seq), fmt.Sprintf(`"timestamp":"2026-01-01T00:%02d:%02dZ"`, (seq/60)%60, seq%60)}
	if r.IntN(4) > 0 {
		f = append(f, fmt.Sprintf(`"userId":"u%d"`, u))
	}
	if r.IntN(2) == 0 || len(f) == 2 {
		// Anonymous ids are shared across neighbouring users now and then.
		a := u*3 + r.IntN(3)
		if r.IntN(8) == 0 {
			a = r.IntN(users * 3)
		}
		f = append(f, fmt.Sprintf(`"anonymousId":"a%d"`, a))
	}
	var traits []string
	if r.IntN(3) == 0 {
		e := u
		if r.IntN(10) == 0 {
			e = r.IntN(users)
		}
		traits = append(traits, fmt.Sprintf(`"email":"e%d@x"`, e))
	}
	if r.IntN(5) == 0 {
		traits = append(traits, fmt.Sprintf(`"phone":"+%d"`, u*10+r.IntN(2)))
	}
	typ := `"type":"track","event":"E` + strconv.Itoa(seq) + `"`
	if len(traits) > 0 {
		typ = `"type":"identify"`
		f = append(f, `"traits":{`+strings.Join(traits, ",")+`}`)
	}
	f = append(f, typ)
	return "{" + strings.Join(f, ",") + "}"
}

// components is the reference: a single-threaded union-find over the
// identifiers of each event, the answer when no limit ever refuses a merge.
func components(rules *identity.Rules, events []string) (map[string]string, map[string]int) {
	h := newParse()
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	firsts := make([]string, len(events))
	for i, e := range events {
		ids := h.extract(rules, e)
		for _, id := range ids {
			if _, ok := parent[id]; !ok {
				parent[id] = id
			}
		}
		for _, id := range ids[1:] {
			parent[find(id)] = find(ids[0])
		}
		firsts[i] = ids[0]
	}
	comp := map[string]string{}
	for id := range parent {
		comp[id] = find(id)
	}
	counts := map[string]int{}
	for _, f := range firsts {
		counts[comp[f]]++
	}
	return comp, counts
}

func TestPropertyAgainstReference(t *testing.T) {
	seeds := 12
	if s := os.Getenv("TESSERA_IDENTITY_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	loose := config.DefaultIdentity()
	for i := range loose.Types {
		loose.Types[i].Limit = 1000
	}
	loose.MaxIdentifiers = 10000
	tight := config.DefaultIdentity()
	tight.Types[1].Limit = 2 // email
	tight.Types[4].Limit = 2 // anonymous_id

	for _, partitions := range []int32{1, 3, 12} {
		for _, mode := range []string{"no-conflicts", "conflicts"} {
			for seed := 1; seed <= seeds; seed++ {
				name := fmt.Sprintf("%s/p%d/seed%d", mode, partitions, seed)
				t.Run(name, func(t *testing.T) {
					cfg := loose
					if mode == "conflicts" {
						cfg = tight
					}
					rules, err := identity.NewRules(cfg)
					if err != nil {
						t.Fatal(err)
					}
					r := rand.New(rand.NewPCG(uint64(seed), uint64(partitions)))
					h := newHub(t, partitions, cfg)
					pick := picker(int64(seed))
					var events []string
					for i := 0; i < 300; i++ {
						e := genEvent(r, 25, i)
						events = append(events, e)
						h.send(e)
						// Deliver in bursts, so many messages are in
						// flight at once and interleave.
						if r.IntN(10) == 0 {
							if err := h.d.Drain(pick); err != nil {
								t.Fatal(err)
							}
						}
					}
					if err := h.d.Drain(pick); err != nil {
						t.Fatal(err)
					}
					s := h.state()
					s.check(t, rules, len(events))
					if mode == "no-conflicts" {
						compareComponents(t, rules, s, events)
						compareTimelines(t, h, rules, s, events)
					}
					if t.Failed() {
						t.Logf("reproduce: go test -run 'TestPropertyAgainstReference/%s' ./processor/identity/", name)
					}
				})
			}
		}
	}
}

// compareComponents asserts that the live profiles are exactly the
// reference's connected components, each with its events.
func compareComponents(t *testing.T, rules *identity.Rules, s snapshot, events []string) {
	t.Helper()
	comp, counts := components(rules, events)
	byRoot := map[string][]string{}
	for id, root := range comp {
		byRoot[root] = append(byRoot[root], id)
	}
	if len(byRoot) != len(s.live) {
		t.Errorf("%d live profiles, reference has %d components", len(s.live), len(byRoot))
	}
	for root, ids := range byRoot {
		p := s.profileOf(ids[0])
		if p == nil {
			t.Errorf("component of %s has no profile", ids[0])
			continue
		}
		var got []string
		for _, x := range p.Identifiers {
			got = append(got, x.String())
		}
		sort.Strings(got)
		sort.Strings(ids)
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("profile %s holds %v, component is %v", p.ID, got, ids)
		}
		if int(p.Events) != counts[root] {
			t.Errorf("profile %s counts %d events, component has %d", p.ID, p.Events, counts[root])
		}
	}
}

// compareTimelines asserts that each live profile's timeline answers the
// newest of its component's events, by event time, as many as the hub
// keeps (5, newHubOpts).
func compareTimelines(t *testing.T, h *hub, rules *identity.Rules, s snapshot, events []string) {
	t.Helper()
	const keep = 5
	comp, _ := components(rules, events)
	byRoot := map[string][]string{}
	ps := newParse()
	for _, e := range events {
		root := comp[ps.extract(rules, e)[0]]
		byRoot[root] = append(byRoot[root], e)
	}
	for root, evs := range byRoot {
		p := s.profileOf(root)
		if p == nil {
			continue // compareComponents reports it
		}
		// Newest first; the generator's timestamps are unique and sort as
		// strings.
		sort.SliceStable(evs, func(i, j int) bool {
			return between(evs[i], `"timestamp":"`, `"`) > between(evs[j], `"timestamp":"`, `"`)
		})
		want := evs[:min(keep, len(evs))]
		if gs := h.timeline(p.ID, keep); !slices.Equal(gs, want) {
			t.Errorf("profile %s's timeline:\n%s\nwant\n%s", p.ID, strings.Join(gs, "\n"), strings.Join(want, "\n"))
		}
	}
}

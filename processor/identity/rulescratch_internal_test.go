package identity

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/valyala/fastjson"
)

// One scratch filled for profile after profile, with what each reads,
// holds exactly what RuleEnv builds afresh: nothing of an earlier profile
// or an earlier need stays in its maps.
func TestRuleScratchMatchesRuleEnv(t *testing.T) {
	db, err := state.Open("/db", state.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w := db.Window(FeaturesStore)
	all, err := features.Compile([]config.Feature{
		{Name: "orders_1d", Event: "Order Completed", Agg: "count", Window: "1d"},
		{Name: "revenue_7d", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "7d"},
		{Name: "last_plan", Event: "Order Completed", Agg: "last", Property: "plan", Window: "lifetime"},
	}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	one, err := all.Select([]string{"orders_1d"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	// Three profiles with different traits, event counts and features.
	profiles := map[string]*profile.Profile{}
	for i, events := range [][]string{
		{`{"type":"identify","traits":{"plan":"pro","age":41,"tags":["a","b"]}}`,
			`{"type":"track","event":"Order Completed","properties":{"revenue":20,"plan":"pro"}}`,
			`{"type":"track","event":"Order Completed","properties":{"revenue":300,"plan":"team"}}`},
		{`{"type":"identify","traits":{"email":"b@example.com"}}`,
			`{"type":"track","event":"Viewed","properties":{}}`},
		{},
	} {
		id := fmt.Sprintf("p%d", i)
		p := &profile.Profile{ID: id}
		for k, e := range events {
			at := now.Add(-time.Duration(len(events)-k) * time.Hour)
			v := fastjson.MustParse(e)
			v.Set("timestamp", fastjson.MustParse(fmt.Sprintf("%q", at.Format(time.RFC3339))))
			p.ApplyEvent(v, []byte(v.String()), at.UnixMilli(), profile.Options{Keep: 10})
			if _, err := all.Update(w, []byte(id), v, now); err != nil {
				t.Fatal(err)
			}
		}
		profiles[id] = p
	}
	predict := func(p *profile.Profile) (map[string]any, map[string]any) {
		return map[string]any{"p_alive": float64(len(p.ID))}, nil
	}
	cases := []struct {
		profile string
		needs   audience.Needs
		set     *features.Set
	}{
		{"p0", audience.Everything, all},
		{"p1", audience.Everything, all},
		{"p0", audience.Needs{Traits: true, TraitNames: []string{"plan", "missing"}, Features: true, FeatureNames: []string{"orders_1d"}}, one},
		{"p2", audience.Everything, all},
		{"p0", audience.Needs{Events: true}, nil},
		{"p1", audience.Needs{Features: true}, nil},
		{"p0", audience.Needs{Traits: true, Features: true, Predictions: true}, all},
		{"p1", audience.Needs{Traits: true, Events: true, RFM: true}, all},
	}
	var sc ruleScratch
	for i, c := range cases {
		p := profiles[c.profile]
		want, err := RuleEnv(p, c.needs, c.set, w, now, predict)
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.fill(p, c.needs, c.set, w, now, predict); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&sc.env, want) {
			t.Errorf("case %d (%s, %+v): scratch\n%+v\nwant\n%+v", i, c.profile, c.needs, sc.env, *want)
		}
	}
	// The cases saw features, traits and counts, or the comparison above
	// could pass on empty maps.
	full, err := RuleEnv(profiles["p0"], audience.Everything, all, w, now, predict)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%v %v %v", full.Features, full.Traits["plan"], full.Events["Order Completed"]); got != "map[last_plan:team orders_1d:2 revenue_7d:320] pro 2" {
		t.Errorf("p0's environment: %s", got)
	}
}

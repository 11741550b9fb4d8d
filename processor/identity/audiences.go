package identity

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/valyala/fastjson"
)

// Activation types, as connectors/sink names them.
const (
	audienceEntered = "audience_entered"
	audienceExited  = "audience_exited"
	eventTriggered  = "event_triggered"
)

// audiences returns the audience set in force, or nil.
func (pr *profiler) audiences() *audience.Set {
	if pr.o.Audiences == nil {
		return nil
	}
	return pr.o.Audiences()
}

// RuleEnv builds what a rule that reads needs sees of p as of now, and
// nothing more: decoding every trait, reading every feature's tiles and
// scoring predictions cost more than most rules' match. set must hold
// the features needs names (features.Set.Select), or all of them when
// needs.FeatureNames is nil; window is the features store; predict may be
// nil. Parts the rule does not read are nil maps.
func RuleEnv(p *profile.Profile, needs audience.Needs, set *features.Set, window *state.Window, now time.Time,
	predict func(*profile.Profile) (predictions, rfm map[string]any)) (*audience.Env, error) {
	var sc ruleScratch
	if err := sc.fill(p, needs, set, window, now, predict); err != nil {
		return nil, err
	}
	return &sc.env, nil
}

// ruleScratch is a rule environment whose maps the next fill reuses. The
// profile stage evaluates its audiences on every event, and building the
// environment afresh each time (a map per part, the memberships, the
// names defined) was 8 % of the bytes the hub allocated per event in
// `tessera bench --mode throughput`, 6.5 % at 3,500 events/s: what
// reusing the maps saved.
//
// INVARIANT: nothing refers to env, its maps or members once the next fill
// begins. RuleEnv's environment has a scratch of its own.
type ruleScratch struct {
	env                      audience.Env
	traits, features, events map[string]any
	// members and defined are evaluate's: the audiences env matches,
	// and those defined.
	members, defined map[string]bool
}

// fill builds env as RuleEnv documents it, in the scratch's maps.
func (sc *ruleScratch) fill(p *profile.Profile, needs audience.Needs, set *features.Set, window *state.Window, now time.Time,
	predict func(*profile.Profile) (predictions, rfm map[string]any)) error {
	sc.env = audience.Env{}
	if needs.Traits {
		sc.traits = reuse(sc.traits, len(p.Traits))
		traitsInto(sc.traits, p, needs)
		sc.env.Traits = sc.traits
	}
	if needs.Events {
		sc.events = reuse(sc.events, len(p.Counts))
		for k, n := range p.Counts {
			sc.events[k] = n
		}
		sc.env.Events = sc.events
	}
	if needs.Features {
		sc.features = reuse(sc.features, 0)
		if set != nil {
			if err := set.ValuesInto(sc.features, window, []byte(p.ID), now); err != nil {
				return err
			}
		}
		sc.env.Features = sc.features
	}
	if needs.Predictions || needs.RFM {
		// Empty maps only where predict gives none: a rule that reads
		// predictions reads them on every event.
		var preds, rfm map[string]any
		if predict != nil {
			preds, rfm = predict(p)
		}
		if preds == nil {
			preds = map[string]any{}
		}
		if rfm == nil {
			rfm = map[string]any{}
		}
		sc.env.Predictions, sc.env.RFM = preds, rfm
	}
	return nil
}

// reuse returns m cleared, or a new map sized for n when m is nil.
func reuse[V any](m map[string]V, n int) map[string]V {
	if m == nil {
		return make(map[string]V, n)
	}
	clear(m)
	return m
}

// ruleEnv builds what the audiences of set read of the profile as of now,
// in the profiler's scratch: valid until the next ruleEnv of any profile
// of the task.
func (s *step) ruleEnv(set *audience.Set, now time.Time) (*audience.Env, error) {
	feats, err := s.pr.ruleFeatures(set)
	if err != nil {
		return nil, err
	}
	sc := &s.pr.rules
	if err := sc.fill(&s.r.P, set.Needs(), feats, s.ctx.Window(FeaturesStore), now, s.pr.o.Predict); err != nil {
		return nil, err
	}
	return &sc.env, nil
}

// ruleFeatures returns the features the audiences of set read: a Set of
// only those, cached for the pair of sets in force.
func (pr *profiler) ruleFeatures(set *audience.Set) (*features.Set, error) {
	all := pr.features()
	if all == nil || !set.Needs().Features {
		return nil, nil
	}
	if pr.ruleOf.features == all && pr.ruleOf.audiences == set {
		return pr.ruleSet, nil
	}
	sel := all
	if names := set.Needs().FeatureNames; names != nil {
		var err error
		if sel, err = all.Select(names); err != nil {
			return nil, fmt.Errorf("selecting the audiences' features: %w", err)
		}
	}
	pr.ruleOf.features, pr.ruleOf.audiences, pr.ruleSet = all, set, sel
	return sel, nil
}

// snapshot is the profile as activations carry it, as of now: every
// trait, feature, prediction and score, whatever the rules read.
func (s *step) snapshot(now time.Time) (map[string]any, error) {
	p := &s.r.P
	env, err := RuleEnv(p, audience.Everything, s.pr.features(), s.ctx.Window(FeaturesStore), now, s.pr.o.Predict)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": p.ID, "identifiers": identViews(p.Identifiers), "traits": env.Traits, "features": env.Features,
		"predictions": env.Predictions, "rfm": env.RFM, "first_seen": millis(p.FirstSeen), "last_seen": millis(p.LastSeen),
		"consent": ConsentView(p),
	}, nil
}

// ConsentView is a profile's consent as the API and activations show it:
// each category the person spoke of, granted or not.
func ConsentView(p *profile.Profile) map[string]bool {
	out := make(map[string]bool, len(p.Consent))
	for k, c := range p.Consent {
		out[k] = c.Granted
	}
	return out
}

// propertiesFor converts the event properties props that needs reads: those
// it names, or all of them; an empty map when it reads none, or props is
// not an object.
func propertiesFor(props *fastjson.Value, needs audience.Needs) map[string]any {
	if !needs.Properties || props == nil || props.Type() != fastjson.TypeObject {
		return map[string]any{}
	}
	if needs.PropertyNames == nil {
		m, _ := profile.ValueOf(props).(map[string]any)
		return m
	}
	out := make(map[string]any, len(needs.PropertyNames))
	for _, k := range needs.PropertyNames {
		if p := props.Get(k); p != nil {
			out[k] = profile.ValueOf(p)
		}
	}
	return out
}

// traitsFor decodes the traits of p that needs reads: those it names, or
// all of them; nil when it reads none.
func traitsFor(p *profile.Profile, needs audience.Needs) map[string]any {
	if !needs.Traits {
		return nil
	}
	n := len(p.Traits)
	if needs.TraitNames != nil {
		n = len(needs.TraitNames)
	}
	out := make(map[string]any, n)
	traitsInto(out, p, needs)
	return out
}

// traitsInto adds to out the traits of p that needs reads, decoded.
func traitsInto(out map[string]any, p *profile.Profile, needs audience.Needs) {
	if needs.TraitNames != nil {
		for _, k := range needs.TraitNames {
			if t, ok := p.Traits[k]; ok {
				if v, ok := t.Decode(); ok {
					out[k] = v
				}
			}
		}
		return
	}
	for k, t := range p.Traits {
		if v, ok := t.Decode(); ok {
			out[k] = v
		}
	}
}

func identViews(ids []profile.Ident) []map[string]string {
	out := make([]map[string]string, len(ids))
	for i, id := range ids {
		out[i] = map[string]string{"type": id.Type, "value": id.Value}
	}
	return out
}

func millis(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
}

// evaluate re-evaluates the profile's audiences as of now and emits an
// activation for each entry and exit; cause makes the activations' ids
// deterministic. It reports whether membership changed.
func (s *step) evaluate(now time.Time, cause string) (bool, error) {
	set := s.pr.audiences()
	if set == nil || s.r.P.ID == "" {
		return false, nil
	}
	auds := set.Audiences()
	if len(auds) == 0 && len(s.r.Audiences) == 0 {
		return false, nil
	}
	env, err := s.ruleEnv(set, now)
	if err != nil {
		return false, err
	}
	members := reuse(s.pr.rules.members, len(auds))
	s.pr.rules.members = members
	set.MembersInto(members, env)
	changed := false
	type transition struct{ name, typ string }
	var out []transition
	defined := reuse(s.pr.rules.defined, len(auds))
	s.pr.rules.defined = defined
	for _, a := range auds {
		defined[a.Name] = true
		in, was := members[a.Name], s.r.Audiences[a.Name]
		first := !s.r.Evaluated[a.Key]
		if first {
			if s.r.Evaluated == nil {
				s.r.Evaluated = make(map[string]bool)
			}
			s.r.Evaluated[a.Key] = true
			changed = true
		}
		if in == was {
			continue
		}
		if s.r.Audiences == nil {
			s.r.Audiences = make(map[string]bool)
		}
		changed = true
		if in {
			s.r.Audiences[a.Name] = true
		} else {
			delete(s.r.Audiences, a.Name)
		}
		// A profile that matched a new audience already when it was
		// defined joins it silently unless the audience asks to
		// activate existing members.
		if first && in && !a.ActivateExisting && s.r.P.Created < a.CreatedAt {
			continue
		}
		typ := audienceEntered
		if !in {
			typ = audienceExited
		}
		out = append(out, transition{a.Name, typ})
	}
	for name := range s.r.Audiences {
		if !defined[name] {
			delete(s.r.Audiences, name) // the audience was deleted
			changed = true
		}
	}
	if len(out) == 0 {
		return changed, nil
	}
	snapshot, err := s.snapshot(now)
	if err != nil {
		return changed, err
	}
	names := make([]string, 0, len(s.r.Audiences))
	for n := range s.r.Audiences {
		names = append(names, n)
	}
	snapshot["audiences"] = names
	profileJSON, err := json.Marshal(snapshot)
	if err != nil {
		return changed, err
	}
	for _, t := range out {
		if err := s.activate(t.typ, t.name, cause, now, profileJSON, nil); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// triggers emits an activation for each trigger the event fires.
func (s *step) triggers(v *fastjson.Value, raw []byte, now time.Time) error {
	set := s.pr.audiences()
	if set == nil || len(set.Triggers()) == 0 {
		return nil
	}
	name := v.GetStringBytes("event")
	if !set.Watches(string(name)) {
		return nil
	}
	needs := set.TriggerNeeds()
	env := &audience.EventEnv{Event: string(name), Type: string(v.GetStringBytes("type")),
		Properties: propertiesFor(v.Get("properties"), needs), Traits: traitsFor(&s.r.P, needs)}
	fired := set.Fired(env)
	if len(fired) == 0 {
		return nil
	}
	snapshot, err := s.snapshot(now)
	if err != nil {
		return err
	}
	profileJSON, err := json.Marshal(snapshot)
	if err != nil {
		return err
	}
	cause := string(v.GetStringBytes("messageId"))
	for _, t := range fired {
		if err := s.activate(eventTriggered, t.Name, cause, now, profileJSON, raw); err != nil {
			return err
		}
	}
	return nil
}

func (s *step) activate(typ, name, cause string, now time.Time, profileJSON, event []byte) error {
	if s.pr.o.Activate == nil {
		return nil
	}
	id := audience.ActivationID(s.id, name, typ, cause)
	var routes []string
	if set := s.pr.audiences(); set != nil {
		routes = set.Destinations(name)
	}
	b, err := s.pr.o.Activate(Activation{
		ID: id, Type: typ, Name: name, ProfileID: s.id, Timestamp: now, Profile: profileJSON, Event: event,
		Destinations: routes,
	})
	if err != nil {
		return err
	}
	return s.ctx.ForwardTo("profile-activations", topology.Record{Key: []byte(s.id), Value: b, Timestamp: now})
}

// Activation is what the profile stage hands Options.Activate to encode
// for <app>.activations (connectors/sink.Activation's fields).
type Activation struct {
	ID, Type, Name, ProfileID string
	Timestamp                 time.Time
	Profile, Event            []byte
	// Destinations are those the audience or trigger names; nil leaves
	// the choice to each destination's filter.
	Destinations []string
}

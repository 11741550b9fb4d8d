package identity

import (
	"encoding/json"
	"time"

	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/profile"
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

// env builds what audience rules see of the profile as of now.
func (s *step) env(now time.Time) (*audience.Env, map[string]any, error) {
	p := &s.r.P
	env := &audience.Env{
		Traits:      traitsOf(p),
		Features:    map[string]any{},
		Predictions: map[string]any{},
		RFM:         map[string]any{},
		Events:      map[string]any{},
	}
	for k, n := range p.Counts {
		env.Events[k] = n
	}
	if set := s.pr.features(); set != nil {
		vals, err := set.Values(s.ctx.Window(FeaturesStore), []byte(s.id), now)
		if err != nil {
			return nil, nil, err
		}
		env.Features = vals
	}
	if s.pr.o.Predict != nil {
		preds, rfm := s.pr.o.Predict(p)
		if preds != nil {
			env.Predictions = preds
		}
		if rfm != nil {
			env.RFM = rfm
		}
	}
	snapshot := map[string]any{
		"id": p.ID, "identifiers": identViews(p.Identifiers), "traits": env.Traits, "features": env.Features,
		"predictions": env.Predictions, "rfm": env.RFM, "first_seen": millis(p.FirstSeen), "last_seen": millis(p.LastSeen),
		"consent": ConsentView(p),
	}
	return env, snapshot, nil
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

func traitsOf(p *profile.Profile) map[string]any {
	out := make(map[string]any, len(p.Traits))
	for k, t := range p.Traits {
		if v, ok := t.Decode(); ok {
			out[k] = v
		}
	}
	return out
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
	env, snapshot, err := s.env(now)
	if err != nil {
		return false, err
	}
	members := set.Members(env)
	changed := false
	type transition struct{ name, typ string }
	var out []transition
	defined := make(map[string]bool, len(auds))
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
	env := &audience.EventEnv{
		Event: string(v.GetStringBytes("event")), Type: string(v.GetStringBytes("type")),
		Properties: map[string]any{}, Traits: traitsOf(&s.r.P),
	}
	if props := v.Get("properties"); props != nil {
		_ = json.Unmarshal(props.MarshalTo(nil), &env.Properties)
	}
	fired := set.Fired(env)
	if len(fired) == 0 {
		return nil
	}
	_, snapshot, err := s.env(now)
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

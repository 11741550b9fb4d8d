// Package audience decides which audiences a profile belongs to: rules
// over its traits, features, predictions and RFM segment, written in
// expr-lang and compiled once per definition, and event triggers, rules
// over a single incoming event. It only decides; the profile stage
// evaluates it when a profile changes and as time passes, and emits the
// entries and exits as activations.
package audience

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Definition is an audience as the config and the API write it.
type Definition struct {
	Name string `yaml:"name" json:"name"`
	// Rule is an expr-lang expression over traits, features, predictions
	// and rfm, e.g. `features.orders_30d >= 3 && traits.plan == "pro"`.
	Rule string `yaml:"rule" json:"rule"`
	// Destinations feed on this audience's activations.
	Destinations []string `yaml:"destinations" json:"destinations,omitempty"`
	// ActivateExisting says whether profiles already matching when the
	// audience is created are activated (entered) or only marked members.
	ActivateExisting bool `yaml:"activate_existing" json:"activate_existing,omitempty"`
	// CreatedAt (Unix ms) tells existing profiles (created before it)
	// from new ones; the definitions store sets it.
	CreatedAt int64 `yaml:"-" json:"created_at,omitempty"`
}

// Trigger is a rule on a single incoming event.
type Trigger struct {
	Name string `yaml:"name" json:"name"`
	// Event is the track event name it looks at ("" for every event).
	Event string `yaml:"event" json:"event,omitempty"`
	// Rule is an expr-lang expression over the event's properties (and
	// the profile's traits), e.g. `properties.revenue > 500`.
	Rule         string   `yaml:"rule" json:"rule"`
	Destinations []string `yaml:"destinations" json:"destinations,omitempty"`
}

// Env is what a rule sees of a profile.
type Env struct {
	Traits      map[string]any `expr:"traits"`
	Features    map[string]any `expr:"features"`
	Predictions map[string]any `expr:"predictions"`
	RFM         map[string]any `expr:"rfm"`
	Events      map[string]any `expr:"events"`
}

// EventEnv is what a trigger sees.
type EventEnv struct {
	Event      string         `expr:"event"`
	Type       string         `expr:"type"`
	Properties map[string]any `expr:"properties"`
	Traits     map[string]any `expr:"traits"`
}

// RuleError is a rule that does not compile, with where.
type RuleError struct {
	Name   string
	Line   int
	Column int
	Msg    string
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("audience %q: rule: %s (line %d, column %d)", e.Name, e.Msg, e.Line, e.Column)
}

type compiled struct {
	def  Definition
	key  string
	prog *vm.Program
}

type compiledTrigger struct {
	def  Trigger
	prog *vm.Program
}

// Set is a compiled set of audiences and triggers. It is safe for
// concurrent use: expr programs are immutable, each run has its own VM.
type Set struct {
	audiences []compiled
	triggers  []compiledTrigger
	// views and triggerDefs describe the compiled definitions once: the
	// profile stage reads them on every event.
	views       []Audience
	triggerDefs []Trigger
	// routes are the destinations each audience and trigger names, by
	// name; names without any are absent.
	routes map[string][]string
	// needs is what the audiences' rules read, all of them together;
	// triggerNeeds the same of the triggers' (of the profile: traits).
	needs, triggerNeeds Needs
}

func compileRule(name, rule string, env any) (*vm.Program, error) {
	opts := []expr.Option{expr.Env(env), expr.AsBool()}
	if _, ok := env.(Env); ok {
		opts = append(opts, expr.Patch(eventCounts{}))
	}
	p, err := expr.Compile(rule, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &RuleError{Name: name, Line: fe.Line, Column: fe.Column + 1, Msg: fe.Message}
		}
		return nil, &RuleError{Name: name, Msg: err.Error()}
	}
	return p, nil
}

// Compile compiles the definitions; errors name the audience and the
// position in its rule.
func Compile(audiences []Definition, triggers []Trigger) (*Set, error) {
	s := &Set{}
	var errs []error
	seen := map[string]bool{}
	for _, d := range audiences {
		if d.Name == "" || seen[d.Name] {
			errs = append(errs, fmt.Errorf("audience %q: name empty or used twice", d.Name))
			continue
		}
		seen[d.Name] = true
		p, err := compileRule(d.Name, d.Rule, Env{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.audiences = append(s.audiences, compiled{def: d, key: keyOf(d), prog: p})
	}
	for _, tr := range triggers {
		if tr.Name == "" || seen[tr.Name] {
			errs = append(errs, fmt.Errorf("trigger %q: name empty or used twice", tr.Name))
			continue
		}
		seen[tr.Name] = true
		p, err := compileRule(tr.Name, tr.Rule, EventEnv{})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.triggers = append(s.triggers, compiledTrigger{def: tr, prog: p})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(s.audiences, func(i, j int) bool { return s.audiences[i].def.Name < s.audiences[j].def.Name })
	for _, a := range s.audiences {
		s.views = append(s.views, Audience{Definition: a.def, Key: a.key})
	}
	for _, t := range s.triggers {
		s.triggerDefs = append(s.triggerDefs, t.def)
	}
	rules := make([]string, len(s.audiences))
	for i, a := range s.audiences {
		rules[i] = a.def.Rule
	}
	s.needs = NeedsOfAll(rules)
	rules = rules[:0]
	for _, t := range s.triggers {
		rules = append(rules, t.def.Rule)
	}
	s.triggerNeeds = NeedsOfAll(rules)
	s.routes = make(map[string][]string)
	for _, a := range s.audiences {
		if len(a.def.Destinations) > 0 {
			s.routes[a.def.Name] = a.def.Destinations
		}
	}
	for _, t := range s.triggers {
		if len(t.def.Destinations) > 0 {
			s.routes[t.def.Name] = t.def.Destinations
		}
	}
	return s, nil
}

// Destinations returns the destinations the audience or trigger called
// name feeds, as its definition lists them: nil when it lists none (or
// is not defined), and then every destination's own filter decides. The
// slice is the Set's own: callers must not modify it.
func (s *Set) Destinations(name string) []string { return s.routes[name] }

// eventCounts makes events["X"] read 0 for an event the profile never
// had, as it means: without it the comparison fails at run time, which
// counts as no match (right) but costs a panic and its recovery in expr's
// VM for every such profile (a preview over many).
type eventCounts struct{}

func (eventCounts) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	if root, ok := m.Node.(*ast.IdentifierNode); ok && root.Value == "events" {
		ast.Patch(node, &ast.BinaryNode{Operator: "??", Left: m, Right: &ast.IntegerNode{Value: 0}})
	}
}

// CompileRule compiles one audience rule, for validation and previews.
func CompileRule(rule string) (*vm.Program, error) { return compileRule("preview", rule, Env{}) }

// keyOf identifies an audience's meaning: a changed rule is a new
// audience for the "evaluated before" bookkeeping.
func keyOf(d Definition) string {
	h := sha256.Sum256([]byte(d.Name + "\x00" + d.Rule))
	return hex.EncodeToString(h[:8])
}

// Audience describes one compiled audience.
type Audience struct {
	Definition
	// Key changes when the rule changes.
	Key string
}

// Audiences returns the compiled audiences by name. The slice is the
// Set's own: callers must not modify it.
func (s *Set) Audiences() []Audience { return s.views }

// Triggers returns the compiled triggers. The slice is the Set's own:
// callers must not modify it.
func (s *Set) Triggers() []Trigger { return s.triggerDefs }

// Members returns, for each audience, whether env satisfies its rule. A
// rule that fails at run time (a missing feature compared as a number)
// counts as not matching.
func (s *Set) Members(env *Env) map[string]bool {
	out := make(map[string]bool, len(s.audiences))
	s.MembersInto(out, env)
	return out
}

// MembersInto is Members writing into out, for a caller that evaluates
// one profile after another into the same map: it sets a key for every
// audience of the Set and touches no other, so a map cleared before the
// call ends up as Members would have returned it.
func (s *Set) MembersInto(out map[string]bool, env *Env) {
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	for _, a := range s.audiences {
		out[a.def.Name] = match(m, a.prog, env)
	}
}

// vms holds expression machines between calls: expr.Run makes a new one,
// with its stack and variables, for every rule of every event. A VM
// resets itself at the start of each run, so one call runs all its rules
// on one.
var vms = sync.Pool{New: func() any { return new(vm.VM) }}

// Match runs a compiled rule over env.
func Match(p *vm.Program, env any) bool {
	m := vms.Get().(*vm.VM)
	defer vms.Put(m)
	return match(m, p, env)
}

// match runs p over env on m; a run-time error is no match.
func match(m *vm.VM, p *vm.Program, env any) bool {
	v, err := m.Run(p, env)
	if err != nil {
		return false
	}
	b, _ := v.(bool)
	return b
}

// Fired returns the triggers that env fires.
func (s *Set) Fired(env *EventEnv) []Trigger {
	var out []Trigger
	var m *vm.VM
	for _, t := range s.triggers {
		if t.def.Event != "" && t.def.Event != env.Event {
			continue
		}
		if m == nil { // most events fire no trigger's event: no VM
			m = vms.Get().(*vm.VM)
			defer vms.Put(m)
		}
		if match(m, t.prog, env) {
			out = append(out, t.def)
		}
	}
	return out
}

// ActivationID is the deterministic id of an activation: the same cause
// always gives the same id, so a receiver dedupes retries and replays.
func ActivationID(profileID, name, typ, cause string) string {
	h := sha256.Sum256([]byte(profileID + "\x00" + name + "\x00" + typ + "\x00" + cause))
	return hex.EncodeToString(h[:16])
}

// Needs is what of a profile a rule reads: a scan over many profiles
// (a preview) builds only those parts of each one's environment.
type Needs struct {
	Traits, Features, Predictions, RFM, Events bool
	// TraitNames and FeatureNames list the traits and features the rule
	// reads by name (traits.plan, features["orders_7d"]); nil when it
	// also reads them some other way (len(traits), a computed key), and
	// then it needs them all.
	TraitNames, FeatureNames []string
	// Properties says a trigger's rule reads the event's properties, and
	// PropertyNames which ones by name (nil: the whole map, as above).
	// Audience rules have no properties.
	Properties    bool
	PropertyNames []string
}

// Everything needs every part of the environment.
var Everything = Needs{Traits: true, Features: true, Predictions: true, RFM: true, Events: true, Properties: true}

// Needs returns what the audiences' rules read, all of them together:
// evaluating them needs only that much of a profile's environment.
func (s *Set) Needs() Needs { return s.needs }

// TriggerNeeds returns what the triggers' rules read of the profile
// (traits; an EventEnv has no other part of it), all of them together.
func (s *Set) TriggerNeeds() Needs { return s.triggerNeeds }

// Watches reports whether some trigger looks at events called event (a
// track name, "" for other calls): when none does, Fired is empty and the
// event's environment need not be built.
func (s *Set) Watches(event string) bool {
	for _, t := range s.triggers {
		if t.def.Event == "" || t.def.Event == event {
			return true
		}
	}
	return false
}

// NeedsOfAll is what a set of rules reads together: a root any of them
// reads, and the names of traits and features when every rule that reads
// the root reads it by name only.
func NeedsOfAll(rules []string) Needs {
	var out Needs
	var traits, feats, props []string
	allTraits, allFeatures, allProps := false, false, false
	for _, r := range rules {
		n := NeedsOf(r)
		out.Traits = out.Traits || n.Traits
		out.Features = out.Features || n.Features
		out.Predictions = out.Predictions || n.Predictions
		out.RFM = out.RFM || n.RFM
		out.Events = out.Events || n.Events
		if n.Traits {
			allTraits = allTraits || n.TraitNames == nil
			traits = append(traits, n.TraitNames...)
		}
		if n.Features {
			allFeatures = allFeatures || n.FeatureNames == nil
			feats = append(feats, n.FeatureNames...)
		}
		out.Properties = out.Properties || n.Properties
		if n.Properties {
			allProps = allProps || n.PropertyNames == nil
			props = append(props, n.PropertyNames...)
		}
	}
	if out.Traits && !allTraits {
		slices.Sort(traits)
		out.TraitNames = slices.Compact(traits)
	}
	if out.Features && !allFeatures {
		slices.Sort(feats)
		out.FeatureNames = slices.Compact(feats)
	}
	if out.Properties && !allProps {
		slices.Sort(props)
		out.PropertyNames = slices.Compact(props)
	}
	return out
}

// NeedsOf parses rule and reports which of the environment's roots it
// names. A rule that does not parse needs everything (compiling it
// reports the error).
func NeedsOf(rule string) Needs {
	tree, err := parser.Parse(rule)
	if err != nil {
		return Everything
	}
	v := needsVisitor{named: map[string][]string{}, uses: map[string]int{}}
	ast.Walk(&tree.Node, &v)
	n := v.n
	// Every use of the root as an identifier that is not a by-name
	// member access reads the whole map.
	if len(v.named["traits"]) == v.uses["traits"] {
		n.TraitNames = v.named["traits"]
	}
	if len(v.named["features"]) == v.uses["features"] {
		n.FeatureNames = v.named["features"]
	}
	if len(v.named["properties"]) == v.uses["properties"] {
		n.PropertyNames = v.named["properties"]
	}
	return n
}

type needsVisitor struct {
	n     Needs
	named map[string][]string // root → the names read by member access
	uses  map[string]int      // root → how often it appears
}

func (v *needsVisitor) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.MemberNode:
		root, ok := n.Node.(*ast.IdentifierNode)
		prop, isName := n.Property.(*ast.StringNode)
		if ok && isName && (root.Value == "traits" || root.Value == "features" || root.Value == "properties") {
			v.named[root.Value] = append(v.named[root.Value], prop.Value)
		}
	case *ast.IdentifierNode:
		v.uses[n.Value]++
		switch n.Value {
		case "traits":
			v.n.Traits = true
		case "features":
			v.n.Features = true
		case "predictions":
			v.n.Predictions = true
		case "rfm":
			v.n.RFM = true
		case "events":
			v.n.Events = true
		case "properties":
			v.n.Properties = true
		}
	}
}

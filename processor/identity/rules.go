package identity

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/valyala/fastjson"
)

// Rules say which identifiers an event carries, in priority order, and how
// many of each type one profile may hold.
type Rules struct {
	types    []typeRule
	priority map[string]int
	blocked  map[string]bool
	patterns []*regexp.Regexp
	maxTotal int
}

type typeRule struct {
	name      string
	limit     int
	paths     [][]string
	lowercase bool
}

// customLimit is the per-profile limit of identifier types that arrive in
// context.externalIds without being configured.
const customLimit = 5

// NewRules compiles the identity section of the configuration.
func NewRules(c config.Identity) (*Rules, error) {
	r := &Rules{priority: make(map[string]int), blocked: make(map[string]bool), maxTotal: c.MaxIdentifiers}
	for i, t := range c.Types {
		tr := typeRule{name: t.Name, limit: t.Limit, lowercase: t.Lowercase}
		for _, p := range t.From {
			tr.paths = append(tr.paths, strings.Split(p, "."))
		}
		r.types = append(r.types, tr)
		r.priority[t.Name] = i
	}
	for _, v := range c.BlockedValues {
		r.blocked[strings.ToLower(strings.TrimSpace(v))] = true
	}
	for _, p := range c.BlockedPatterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("compiling blocked pattern %q: %w", p, err)
		}
		r.patterns = append(r.patterns, re)
	}
	if r.maxTotal <= 0 {
		r.maxTotal = 100
	}
	return r, nil
}

// Limit returns how many identifiers of type t one profile may hold.
func (r *Rules) Limit(t string) int {
	if i, ok := r.priority[t]; ok {
		return r.types[i].limit
	}
	return customLimit
}

// Priority orders types: lower is more important; unconfigured (custom)
// types come after every configured one.
func (r *Rules) Priority(t string) int {
	if i, ok := r.priority[t]; ok {
		return i
	}
	return len(r.types)
}

// MaxIdentifiers is the cap on identifiers per profile, all types together.
func (r *Rules) MaxIdentifiers() int { return r.maxTotal }

// Blocked reports whether value may never be an identifier.
func (r *Rules) Blocked(value string) bool {
	if r.blocked[strings.ToLower(strings.TrimSpace(value))] {
		return true
	}
	for _, re := range r.patterns {
		if re.MatchString(value) {
			return true
		}
	}
	return false
}

// Routing returns what ingest partitions events by (ingest.RouteBy): an
// event's routing identifier, the first Extract finds, as its string, or
// nil when it has none. The function is safe for concurrent use.
func (r *Rules) Routing() func(event []byte) []byte {
	var parsers fastjson.ParserPool
	return func(event []byte) []byte {
		p := parsers.Get()
		defer parsers.Put(p)
		v, err := p.ParseBytes(event)
		if err != nil {
			return nil
		}
		ids := r.Extract(v)
		if len(ids) == 0 {
			return nil
		}
		return []byte(ids[0].String())
	}
}

// Extract returns the event's identifiers, highest priority first, without
// duplicates or blocked values. previousId (alias) is an anonymous_id:
// aliasing a known user to a new user id would break the user_id limit,
// which is what Segment's alias is not for.
func (r *Rules) Extract(v *fastjson.Value) []profile.Ident {
	var out []profile.Ident
	add := func(t, val string, lower bool) {
		val = strings.TrimSpace(val)
		if lower {
			val = strings.ToLower(val)
		}
		if val == "" || r.Blocked(val) {
			return
		}
		id := profile.Ident{Type: t, Value: val}
		for _, o := range out {
			if o == id {
				return
			}
		}
		out = append(out, id)
	}
	for _, t := range r.types {
		for _, p := range t.paths {
			if s, ok := scalar(v.Get(p...)); ok {
				add(t.name, s, t.lowercase)
			}
		}
		if t.name == "anonymous_id" && string(v.GetStringBytes("type")) == "alias" {
			if s, ok := scalar(v.Get("previousId")); ok {
				add(t.name, s, t.lowercase)
			}
		}
	}
	for _, x := range v.GetArray("context", "externalIds") {
		t := strings.ToLower(strings.TrimSpace(string(x.GetStringBytes("type"))))
		if t == "" {
			continue
		}
		if s, ok := scalar(x.Get("id")); ok {
			lower := false
			if i, ok := r.priority[t]; ok {
				lower = r.types[i].lowercase
			}
			add(t, s, lower)
		}
	}
	// Configured types by priority, custom ones after, stable within a
	// type in the order found.
	stableSortBy(out, func(id profile.Ident) int { return r.Priority(id.Type) })
	return out
}

// Canonical writes an identifier of type t as Extract would from an
// event: trimmed, and lowercased when the type says so. A value written
// elsewhere (a regulation's identifiers) then matches the events'.
func (r *Rules) Canonical(t, value string) string {
	value = strings.TrimSpace(value)
	if i, ok := r.priority[t]; ok && r.types[i].lowercase {
		value = strings.ToLower(value)
	}
	return value
}

func scalar(v *fastjson.Value) (string, bool) {
	if v == nil {
		return "", false
	}
	switch v.Type() {
	case fastjson.TypeString:
		return string(v.GetStringBytes()), true
	case fastjson.TypeNumber:
		return string(v.MarshalTo(nil)), true
	}
	return "", false
}

func stableSortBy(ids []profile.Ident, key func(profile.Ident) int) {
	// Insertion sort: events carry a handful of identifiers.
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && key(ids[j]) < key(ids[j-1]); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// fits reports whether p may take ids on top of what it holds.
func (r *Rules) fits(p *profile.Profile, ids []profile.Ident) (bool, string) {
	counts := make(map[string]int)
	total := 0
	for _, id := range p.Identifiers {
		counts[id.Type]++
		total++
	}
	for _, id := range ids {
		if p.Has(id) {
			continue
		}
		counts[id.Type]++
		total++
		if counts[id.Type] > r.Limit(id.Type) {
			return false, fmt.Sprintf("%s limit %d", id.Type, r.Limit(id.Type))
		}
	}
	if total > r.maxTotal {
		return false, fmt.Sprintf("identifier limit %d", r.maxTotal)
	}
	return true, ""
}

package schemas

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/tessera-cdp/tessera/config"
	"github.com/valyala/fastjson"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Tracking plan policies.
const (
	// PolicyAllow keeps an event that violates its plan and records the
	// violation.
	PolicyAllow = "allow"
	// PolicyBlock sends an event that violates its plan to
	// <app>.events.invalid instead of <app>.events.
	PolicyBlock = "block"
)

// MaxViolationErrors caps the errors one Violation lists, so a badly
// broken event does not produce an unbounded reason.
const MaxViolationErrors = 10

// TrackingPlans validates events against JSON Schemas, one per track event
// name and one per call type (identify, page, screen, group), as a Segment
// Protocols tracking plan does. Each schema is compiled once, when the
// plans are loaded; a TrackingPlans is immutable afterwards and safe for
// concurrent use. A nil *TrackingPlans has no plans.
//
// What a plan validates: for track, the event's properties (the plan is
// chosen by the event name); for identify and group, its traits; for page
// and screen, its properties. An absent or null object validates as {}, so
// a plan's "required" list applies to it.
//
// Formats ("format": "email", "date-time", …) are asserted, not only
// annotated: a tracking plan should mean what it says.
type TrackingPlans struct {
	track  map[string]*plan // by track event name
	byType map[string]*plan // identify, page, screen, group
	pool   fastjson.ParserPool
}

type plan struct {
	event  string
	policy string
	file   string // as given in the config, for messages
	field  string // properties or traits
	schema *jsonschema.Schema
}

// Violation is an event that does not match its tracking plan.
type Violation struct {
	// Event is the plan's event: the track event name, or identify, page,
	// screen, group.
	Event string
	// Policy is the plan's policy, allow or block.
	Policy string
	// Errors lists what is wrong, each as the JSON pointer of the value
	// inside the validated object and the message, e.g.
	// "/revenue: got string, want number"; "/" is the object itself.
	// Sorted; at most MaxViolationErrors.
	Errors []string
	// Blocked is true when the policy is block: the event must not reach
	// <app>.events.
	Blocked bool
}

// Reason returns the violation as one line for <app>.events.invalid:
// `tracking plan "Order Completed": /revenue: got string, want number`.
func (v Violation) Reason() string {
	return fmt.Sprintf("tracking plan %q: %s", v.Event, strings.Join(v.Errors, "; "))
}

// typePlans are the plan names that select a call type rather than a
// track event name.
var typePlans = map[string]string{
	TypeIdentify: "traits",
	TypeGroup:    "traits",
	TypePage:     "properties",
	TypeScreen:   "properties",
}

var printer = message.NewPrinter(language.English)

// LoadTrackingPlans reads and compiles the JSON Schema of each plan, with
// schema paths relative to baseDir (the config file's folder). Schemas
// default to draft 2020-12 unless they name another in $schema; $ref to
// other local files resolves relative to the referring file. An error
// names the plan and its file.
func LoadTrackingPlans(plans []config.TrackingPlan, baseDir string) (*TrackingPlans, error) {
	tp := &TrackingPlans{track: map[string]*plan{}, byType: map[string]*plan{}}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	seen := map[string]int{}
	for i, cp := range plans {
		if cp.Event == "" {
			return nil, fmt.Errorf("tracking plan %d: event must not be empty", i)
		}
		if j, ok := seen[cp.Event]; ok {
			return nil, fmt.Errorf("tracking plan %q: listed twice (plans %d and %d)", cp.Event, j, i)
		}
		seen[cp.Event] = i
		p, err := compilePlan(c, cp, baseDir)
		if err != nil {
			return nil, fmt.Errorf("tracking plan %q: %w", cp.Event, err)
		}
		if field, ok := typePlans[cp.Event]; ok {
			p.field = field
			tp.byType[cp.Event] = p
		} else {
			p.field = "properties"
			tp.track[cp.Event] = p
		}
	}
	return tp, nil
}

func compilePlan(c *jsonschema.Compiler, cp config.TrackingPlan, baseDir string) (*plan, error) {
	if cp.Policy != PolicyAllow && cp.Policy != PolicyBlock {
		return nil, fmt.Errorf("policy must be allow or block, got %q", cp.Policy)
	}
	if cp.Schema == "" {
		return nil, errors.New("schema must name a JSON Schema file")
	}
	path := cp.Schema
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("reading schema %s: %w", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing schema %s: %s", path, jsonErrorAt(b, err))
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("locating schema %s: %w", path, err)
	}
	loc := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	// Two plans may share a file, or one may $ref another's: the compiler
	// has it already, compiled from the same bytes.
	var exists *jsonschema.ResourceExistsError
	if err := c.AddResource(loc, doc); err != nil && !errors.As(err, &exists) {
		return nil, fmt.Errorf("loading schema %s: %w", path, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("compiling schema %s: %s", path, compileError(err))
	}
	return &plan{event: cp.Event, policy: cp.Policy, file: path, schema: sch}, nil
}

// jsonErrorAt places a JSON syntax error by line and column.
func jsonErrorAt(b []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		return err.Error()
	}
	// Offset counts the bytes read, the offending one included.
	off := max(min(int(se.Offset), len(b))-1, 0)
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(b[:off], '\n')
	return fmt.Sprintf("line %d, column %d: %v", line, col, se)
}

// compileError flattens the compiler's errors: a schema that breaks its
// metaschema lists the offending keywords ("not a valid JSON Schema:
// /properties/revenue/type: value must be one of …").
func compileError(err error) string {
	var sve *jsonschema.SchemaValidationError
	if errors.As(err, &sve) {
		var ve *jsonschema.ValidationError
		if errors.As(sve.Err, &ve) {
			return "not a valid JSON Schema: " + strings.Join(leafErrors(ve, 0), "; ")
		}
		return "not a valid JSON Schema: " + sve.Err.Error()
	}
	return err.Error()
}

// leafErrors lists the innermost errors of a validation, where the cause
// is (the outer ones only say "allOf failed"), sorted by instance location,
// at most limit (0: no limit).
func leafErrors(ve *jsonschema.ValidationError, limit int) []string {
	type leaf struct{ at, msg string }
	var leaves []leaf
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, leaf{pointer(e.InstanceLocation), e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.SortFunc(leaves, func(a, b leaf) int {
		return cmp.Or(strings.Compare(a.at, b.at), strings.Compare(a.msg, b.msg))
	})
	leaves = slices.Compact(leaves)
	out := make([]string, len(leaves))
	for i, l := range leaves {
		out[i] = l.at + ": " + l.msg
	}
	if limit > 0 && len(out) > limit {
		n := len(out) - limit + 1
		out = append(out[:limit-1], fmt.Sprintf("and %d more", n))
	}
	return out
}

// pointer renders an instance location as a JSON pointer, "/" for the
// validated object itself.
func pointer(loc []string) string {
	if len(loc) == 0 {
		return "/"
	}
	var sb strings.Builder
	for _, t := range loc {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}

// Len returns how many plans there are.
func (p *TrackingPlans) Len() int {
	if p == nil {
		return 0
	}
	return len(p.track) + len(p.byType)
}

// Check validates ev against its plan. It returns false when the event has
// no plan or matches it; it parses the event only when a plan may apply
// (any track plan for track events, a plan of the event's type
// otherwise).
func (p *TrackingPlans) Check(ev Normalized) (Violation, bool) {
	if p == nil {
		return Violation{}, false
	}
	var pl *plan
	switch ev.Type {
	case TypeTrack:
		if len(p.track) == 0 {
			return Violation{}, false
		}
	default:
		if pl = p.byType[ev.Type]; pl == nil {
			return Violation{}, false
		}
	}
	parser := p.pool.Get()
	defer p.pool.Put(parser)
	v, err := parser.ParseBytes(ev.Value)
	if err != nil {
		// Normalized values are valid JSON; anything else has no plan to
		// break.
		return Violation{}, false
	}
	if pl == nil {
		if pl = p.track[string(v.GetStringBytes("event"))]; pl == nil {
			return Violation{}, false
		}
	}
	var inst any = map[string]any{}
	if f := v.Get(pl.field); f != nil && f.Type() != fastjson.TypeNull {
		inst = native(f)
	}
	err = pl.schema.Validate(inst)
	if err == nil {
		return Violation{}, false
	}
	viol := Violation{Event: pl.event, Policy: pl.policy, Blocked: pl.policy == PolicyBlock}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		viol.Errors = leafErrors(ve, MaxViolationErrors)
	} else {
		viol.Errors = []string{"/: " + err.Error()}
	}
	return viol, true
}

// native converts a fastjson value to what the validator takes: maps,
// slices, strings, bools, nil and json.Number (exact, as in the event).
func native(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) { m[string(k)] = native(x) })
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		s := make([]any, len(a))
		for i, x := range a {
			s[i] = native(x)
		}
		return s
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNumber:
		return json.Number(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

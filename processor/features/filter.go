package features

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/types"
	"github.com/expr-lang/expr/vm"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/valyala/fastjson"
)

// filterProg is a compiled filter. It is immutable and shared by the
// clones of a Set; the VM and environment that run it are per Set.
type filterProg struct {
	program *vm.Program
	// names are the identifiers the expression reads besides event, type
	// and properties: the properties to put in its environment. It may
	// also hold names of variables the expression declares (let), which
	// then get a harmless unused entry.
	names []string
	// whole is set when the expression reads properties as a map.
	whole bool
}

// reserved are the environment's names that are not properties.
var reserved = []string{"event", "type", "properties"}

// compileFilter compiles src once. known lists the event's properties when
// they are known (a tracking plan), and then any other name is refused;
// nil accepts every name, reading it from the event's properties.
func compileFilter(src string, known []string) (*filterProg, error) {
	env := types.Map{
		"event":      types.String,
		"type":       types.String,
		"properties": types.Map{types.Extra: types.Any},
	}
	if known == nil {
		env[types.Extra] = types.Any
	} else {
		for _, k := range known {
			if !slices.Contains(reserved, k) {
				env[k] = types.Any
			}
		}
	}
	program, err := expr.Compile(src, expr.Env(env), expr.AsBool())
	if err != nil {
		return nil, describeExprError(err, known)
	}
	p := &filterProg{program: program}
	c := &identCollector{}
	node := program.Node()
	ast.Walk(&node, c)
	for _, n := range c.names {
		switch {
		case n == "properties":
			p.whole = true
		case slices.Contains(reserved, n), slices.Contains(p.names, n):
		default:
			p.names = append(p.names, n)
		}
	}
	return p, nil
}

// describeExprError turns expr's error into one line: what is wrong and
// where, with a suggestion for a misspelt property.
func describeExprError(err error, known []string) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err
	}
	msg, hint := fe.Message, ""
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		msg = fmt.Sprintf("unknown name %q", name)
		if s := config.Suggest(name, known); s != "" {
			hint = fmt.Sprintf("; did you mean %q?", s)
		}
	}
	if fe.Line == 0 {
		return errors.New(msg + hint)
	}
	return fmt.Errorf("%s (line %d, column %d)%s", msg, fe.Line, fe.Column+1, hint)
}

type identCollector struct{ names []string }

func (c *identCollector) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		c.names = append(c.names, id.Value)
	}
}

// filterRun is a Set's means of running one filter: its own VM (which
// reuses its stack between runs) and environment map (whose keys stay,
// values are replaced on each run).
type filterRun struct {
	vm  vm.VM
	env map[string]any
}

// match runs p on one event: typ and event are the call type and track
// name (strings, boxed by the caller so that constant names cost no
// allocation), props its properties (or traits; nil when it has none).
func (r *filterRun) match(p *filterProg, typ, event any, props *fastjson.Value) (bool, error) {
	if r.env == nil {
		r.env = make(map[string]any, len(p.names)+3)
	}
	r.env["event"] = event
	r.env["type"] = typ
	for _, n := range p.names {
		r.env[n] = profile.ValueOf(props.Get(n))
	}
	if p.whole {
		m, ok := profile.ValueOf(props).(map[string]any)
		if !ok {
			m = map[string]any{}
		}
		r.env["properties"] = m
	}
	out, err := r.vm.Run(p.program, r.env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool) // AsBool: a bool or an error
	return b, nil
}

package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Load reads the configuration file at path and parses it; see Parse.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a tessera.yaml document on top of Default. name, usually the file's path,
// starts every error message. An empty document yields the defaults.
//
// Parse is strict: unknown keys, values of the wrong type (3.5 where an integer is
// expected) and malformed durations are errors, all of them reported at once, one per line
// in document order. It does not validate values; call Validate once the environment and
// flags are applied.
func Parse(data []byte, name string) (Config, error) {
	c := Default()
	// Duplicate keys are left to the checker, whose message is clearer.
	file, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return Config{}, yamlError(name, err)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if body != nil {
			tk := doc.Start // "---"
			if tk == nil {
				tk = doc.Body.GetToken()
			}
			return Config{}, fmt.Errorf("%s: more than one YAML document", position(name, tk))
		}
		body = doc.Body
	}
	if body == nil {
		return c, nil
	}

	// goccy's decoder reports one unknown key at random, truncates 3.5 to 3 and gives
	// Go type names in its messages; checking the tree first gives every error, in order,
	// with its key path.
	ck := checker{name: name, origins: make(map[string]origin)}
	ck.check(body, reflect.TypeFor[Config](), "")
	if err := errors.Join(ck.errs...); err != nil {
		return Config{}, err
	}
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return Config{}, yamlError(name, err)
	}
	c.origins = ck.origins
	return c, nil
}

// yamlError formats an error of goccy/go-yaml as "name:line:column: message", without the
// source excerpt it prints by default.
func yamlError(name string, err error) error {
	var yerr yaml.Error
	if errors.As(err, &yerr) && yerr.GetToken() != nil {
		p := yerr.GetToken().Position
		return fmt.Errorf("%s:%d:%d: %s", name, p.Line, p.Column, yerr.GetMessage())
	}
	return fmt.Errorf("%s: %w", name, err)
}

func position(name string, tk *token.Token) string {
	p := tk.Position
	return fmt.Sprintf("%s:%d:%d", name, p.Line, p.Column)
}

// checker walks a YAML tree against the Go type it decodes into, records the position of
// every value and collects the errors the decoder would report badly or not at all.
type checker struct {
	name    string
	origins map[string]origin
	errs    []error
}

func (ck *checker) errorf(n ast.Node, path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	ck.errs = append(ck.errs, fmt.Errorf("%s: %s", position(ck.name, n.GetToken()), msg))
}

// check checks node n, found at key path, against type t.
func (ck *checker) check(n ast.Node, t reflect.Type, path string) {
	for {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
			continue
		case *ast.AnchorNode:
			n = v.Value
			continue
		}
		break
	}
	if path != "" {
		ck.origins[path] = origin{pos: position(ck.name, n.GetToken())}
	}
	switch n.(type) {
	case *ast.AliasNode, *ast.NullNode:
		return // the decoder resolves and checks aliases; null keeps the default
	}

	switch {
	case t == reflect.TypeFor[Duration]():
		s, ok := scalar(n)
		if !ok {
			ck.errorf(n, path, "expected a duration such as 100ms or 10s, got %s", describe(n))
		} else if _, err := parseDuration(s); err != nil {
			ck.errorf(n, path, "%v", err)
		}
	case t.Kind() == reflect.Struct:
		switch m := n.(type) {
		case *ast.MappingNode:
			ck.checkFields(m.Values, t, path)
		case *ast.MappingValueNode:
			ck.checkFields([]*ast.MappingValueNode{m}, t, path)
		default:
			ck.errorf(n, path, "expected a mapping, got %s", describe(n))
		}
	case t.Kind() == reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			ck.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		for i, item := range seq.Values {
			ck.check(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Int:
		i, ok := n.(*ast.IntegerNode)
		if s, isStr := n.(*ast.StringNode); isStr && isRangeErr(s.Value) {
			// The lexer reads integers too large for 64 bits as strings.
			ck.errorf(n, path, "%s is out of range", s.Value)
		} else if !ok {
			ck.errorf(n, path, "expected an integer, got %s", describe(n))
		} else if !fitsInt(i.Value) {
			ck.errorf(n, path, "%s is out of range", i.GetToken().Value)
		}
	case t.Kind() == reflect.String:
		if _, ok := scalar(n); !ok {
			ck.errorf(n, path, "expected a string, got %s", describe(n))
		}
	}
}

// checkFields checks the keys and values of a mapping against the fields of struct type t.
func (ck *checker) checkFields(pairs []*ast.MappingValueNode, t reflect.Type, path string) {
	var names []string
	fields := make(map[string]reflect.Type)
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "" && name != "-" {
			names = append(names, name)
			fields[name] = f.Type
		}
	}
	seen := make(map[string]*token.Token)
	for _, kv := range pairs {
		if kv.Key.Type() == ast.MergeKeyType {
			continue // "<<: *base"; the decoder checks merged keys
		}
		key := kv.Key.String()
		if s, ok := kv.Key.(*ast.StringNode); ok {
			key = s.Value
		}
		ft, ok := fields[key]
		switch {
		case seen[key] != nil:
			ck.errorf(kv.Key, "", "duplicate key %q (first at line %d)", join(path, key), seen[key].Position.Line)
		case !ok:
			msg := fmt.Sprintf("unknown key %q", join(path, key))
			if near := Suggest(key, names); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", join(path, near))
			}
			ck.errorf(kv.Key, "", "%s", msg)
		default:
			seen[key] = kv.Key.GetToken()
			ck.check(kv.Value, ft, join(path, key))
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns the text of a node that decodes into a string.
func scalar(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.IntegerNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// describe names a node for an error message: "a mapping", "a list", a quoted string or the
// literal (3.5, true).
func describe(n ast.Node) string {
	switch n := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(n.Value)
	}
	return n.GetToken().Value
}

func isRangeErr(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return errors.Is(err, strconv.ErrRange)
}

func fitsInt(v any) bool {
	switch v := v.(type) {
	case int64:
		return v >= math.MinInt && v <= math.MaxInt
	case uint64:
		return v <= math.MaxInt
	}
	return false
}

// Suggest returns the name nearest to key when key is a likely misspelling
// of it (fewer than three edits, and fewer edits than key has letters),
// else "": the "did you mean" of every error about a name, in the config
// and beyond (import mappings, feature filters).
func Suggest(key string, names []string) string {
	best, bestDist := "", min(3, len(key))
	for _, name := range names {
		if d := distance(key, name); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"text/template"
)

// Template renders a destination's payload (a webhook body, an email, the
// text of an SMS or a Slack message) from an activation with Go's
// text/template. Every sink renders through it, so a template means the
// same everywhere:
//
//   - the data is a TemplateData: the Activation's fields (.ID, .Type,
//     .Name, .ProfileID, .Timestamp), the profile and event as JSON text
//     (.Profile, .Event: {"profile": {{.Profile}}} embeds it), and decoded
//     (.ProfileMap, .EventMap), so that {{.ProfileMap.traits.email}}
//     reaches a trait. Numbers keep the text they had in the JSON;
//   - one function besides text/template's own: json, which writes its
//     argument as JSON ({{json .ProfileMap.traits}}), for templates that
//     build JSON bodies;
//   - a key missing from a map renders as "<no value>", as text/template
//     does; guard optional fields with {{with}}.
//
// A template that fails to execute fails the same way every time, so
// Render's errors are Permanent: the activation goes to the dead-letter
// topic with the reason. A Template is safe for concurrent use.
type Template struct {
	t *template.Template
}

// TemplateData is what a Template executes on.
type TemplateData struct {
	Activation
	// Profile and Event are the activation's, printed as JSON text ("null"
	// when absent) rather than as bytes.
	Profile, Event JSONText
	// ProfileMap is Profile decoded: id, identifiers, traits, features,
	// predictions, audiences. Nil when the activation has no profile.
	ProfileMap map[string]any
	// EventMap is Event decoded, for event_triggered; else nil.
	EventMap map[string]any
}

// JSONText is JSON as it was written: a template prints it as its text,
// and the json function passes it through.
type JSONText []byte

// String returns the JSON text, "null" when empty.
func (j JSONText) String() string { return string(j.json()) }

// MarshalJSON returns the JSON text, null when empty.
func (j JSONText) MarshalJSON() ([]byte, error) { return j.json(), nil }

func (j JSONText) json() []byte {
	if len(bytes.TrimSpace(j)) == 0 {
		return []byte("null")
	}
	return j
}

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// ParseTemplate parses text as the template called name (a destination's
// name and field, for error messages), or def when text is empty: each
// sink passes its own default.
func ParseTemplate(name, text, def string) (*Template, error) {
	if text == "" {
		text = def
	}
	t, err := template.New(name).Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parsing template: %w", err)
	}
	return &Template{t: t}, nil
}

// Render executes the template on a. Its errors are Permanent.
func (t *Template) Render(a Activation) ([]byte, error) {
	data := TemplateData{Activation: a, Profile: JSONText(a.Profile), Event: JSONText(a.Event)}
	var err error
	if data.ProfileMap, err = decodeObject(a.Profile); err != nil {
		return nil, Permanent(fmt.Errorf("rendering %s: decoding the profile: %w", t.t.Name(), err))
	}
	if data.EventMap, err = decodeObject(a.Event); err != nil {
		return nil, Permanent(fmt.Errorf("rendering %s: decoding the event: %w", t.t.Name(), err))
	}
	var b bytes.Buffer
	if err := t.t.Execute(&b, data); err != nil {
		return nil, Permanent(fmt.Errorf("rendering %s: %w", t.t.Name(), err))
	}
	return b.Bytes(), nil
}

// decodeObject decodes a JSON object, keeping numbers as json.Number; nil
// or empty input gives nil.
func decodeObject(raw json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

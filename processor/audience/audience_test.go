package audience

import (
	"fmt"
	"strings"
	"testing"
)

func TestCompileAndMembers(t *testing.T) {
	s, err := Compile([]Definition{
		{Name: "big_spenders", Rule: `features.spend_30d > 100`},
		{Name: "pro", Rule: `traits.plan == "pro" && rfm.segment in ["Champions", "Loyal"]`},
		{Name: "likely_churn", Rule: `predictions["90d"].p_alive < 0.3`},
	}, []Trigger{{Name: "big_order", Event: "Order Completed", Rule: `properties.revenue > 500`}})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{
		Traits:      map[string]any{"plan": "pro"},
		Features:    map[string]any{"spend_30d": 150.0},
		Predictions: map[string]any{"90d": map[string]any{"p_alive": 0.2}},
		RFM:         map[string]any{"segment": "Loyal"},
	}
	got := s.Members(env)
	if !got["big_spenders"] || !got["pro"] || !got["likely_churn"] {
		t.Errorf("members %v", got)
	}
	// A missing feature is no match, not an error.
	if s.Members(&Env{})["big_spenders"] {
		t.Error("empty profile matched")
	}
	fired := s.Fired(&EventEnv{Event: "Order Completed", Properties: map[string]any{"revenue": 900.0}})
	if len(fired) != 1 || fired[0].Name != "big_order" {
		t.Errorf("fired %v", fired)
	}
	if len(s.Fired(&EventEnv{Event: "Viewed", Properties: map[string]any{"revenue": 900.0}})) != 0 {
		t.Error("trigger fired on another event")
	}
}

func TestCompileErrorsSayWhere(t *testing.T) {
	tests := []struct {
		rule, want string
	}{
		{`features.x >`, `audience "a": rule: unexpected token EOF (line 1, column 12)`},
		{`traits.plan == `, `(line 1, column 15)`},
		{`1 + 1`, `expected bool`},
	}
	for _, tt := range tests {
		_, err := Compile([]Definition{{Name: "a", Rule: tt.rule}}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want %q", tt.rule, err, tt.want)
		}
	}
}

func TestActivationIDIsDeterministic(t *testing.T) {
	a := ActivationID("p1", "vip", "audience_entered", "m-1")
	if a != ActivationID("p1", "vip", "audience_entered", "m-1") || a == ActivationID("p1", "vip", "audience_exited", "m-1") {
		t.Error("ids")
	}
}

func TestSetDestinations(t *testing.T) {
	set, err := Compile(
		[]Definition{{Name: "vip", Rule: "true", Destinations: []string{"crm", "hook"}}, {Name: "all", Rule: "true"}},
		[]Trigger{{Name: "big_order", Rule: "true", Destinations: []string{"slack"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"vip": "[crm hook]", "all": "[]", "big_order": "[slack]", "nope": "[]"} {
		if got := fmt.Sprint(set.Destinations(name)); got != want {
			t.Errorf("Destinations(%q) = %s, want %s", name, got, want)
		}
	}
}

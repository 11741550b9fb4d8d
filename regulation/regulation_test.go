package regulation

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/tessera-cdp/tessera/processor/profile"
)

func TestValidate(t *testing.T) {
	id := []Identifier{{"email", "a@b"}}
	many := make([]Identifier, MaxIdentifiers+1)
	for i := range many {
		many[i] = Identifier{"user_id", "u"}
	}
	for _, tc := range []struct {
		r    Regulation
		want string // "" when valid
	}{
		{Regulation{Type: Suppress, Identifiers: id}, ""},
		{Regulation{Type: Unsuppress, Identifiers: id}, ""},
		{Regulation{Type: Delete, Identifiers: id}, ""},
		{Regulation{Type: "forget", Identifiers: id}, `type must be delete, suppress or unsuppress, got "forget"`},
		{Regulation{Type: Suppress}, "at least one is required"},
		{Regulation{Type: Suppress, Identifiers: many}, "at most 100, got 101"},
		{Regulation{Type: Suppress, Identifiers: []Identifier{{"email", ""}}}, "identifiers[0]: type and value are required"},
	} {
		err := tc.r.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.r, err, tc.want)
		}
	}
}

// TestSuppressionsFoldInOrderMade: the latest of suppress and unsuppress
// per identifier wins, whatever order the regulations are listed in.
func TestSuppressionsFoldInOrderMade(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reg := func(id, typ string, at int, ids ...Identifier) Regulation {
		return Regulation{ID: id, Type: typ, Identifiers: ids, CreatedAt: t0.Add(time.Duration(at) * time.Minute)}
	}
	mail := Identifier{"email", "m@x"}
	user := Identifier{"user_id", "u1"}
	var s Suppressions
	s.Update([]Regulation{ // listed out of order, as definitions are by name
		reg("r3", Suppress, 3, mail),
		reg("r1", Suppress, 1, mail, user),
		reg("r2", Unsuppress, 2, mail),
	})
	if !s.Any([]profile.Ident{{Type: "email", Value: "m@x"}}) || !s.Any([]profile.Ident{{Type: "user_id", Value: "u1"}}) {
		t.Error("suppressed identifiers are not in the list")
	}
	if s.Any([]profile.Ident{{Type: "email", Value: "other@x"}}) || s.Len() != 2 {
		t.Errorf("list holds %d, want 2", s.Len())
	}
	if !s.Active("r3") || !s.Active("r1") {
		t.Error("r1 (user_id) and r3 (email) should be in force")
	}
	s.Update([]Regulation{reg("r1", Suppress, 1, mail, user), reg("r2", Unsuppress, 2, mail), reg("r4", Unsuppress, 4, user)})
	if s.Len() != 0 || s.Active("r1") {
		t.Errorf("after unsuppressing both: %d left, r1 active %v", s.Len(), s.Active("r1"))
	}
}

func TestTest(t *testing.T) {
	var s Suppressions
	extracted := 0
	extract := func(v *fastjson.Value) []profile.Ident {
		extracted++
		return []profile.Ident{{Type: "user_id", Value: string(v.GetStringBytes("userId"))}}
	}
	test := s.Test(extract)
	if test([]byte(`{"userId":"u1"}`)) || extracted != 0 {
		t.Errorf("an empty list suppressed or parsed (%d extractions)", extracted)
	}
	s.Update([]Regulation{{ID: "r", Type: Suppress, Identifiers: []Identifier{{"user_id", "u1"}}}})
	if !test([]byte(`{"userId":"u1"}`)) || test([]byte(`{"userId":"u2"}`)) {
		t.Error("the test does not follow the list")
	}
}

// TestErasures: an event is erased when one of its identifiers was erased
// at or after it was first known; a delete neither suppresses nor lifts a
// suppression.
func TestErasures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	jane := profile.Ident{Type: "email", Value: "jane@x"}
	anon := profile.Ident{Type: "anonymous_id", Value: "a1"}
	bob := profile.Ident{Type: "user_id", Value: "bob"}
	var e Erasures
	if _, ok := e.ErasedAt([]profile.Ident{jane}); ok {
		t.Fatal("an empty list erased")
	}
	e.Update([]Regulation{
		{ID: "d1", Type: Delete, Erased: []string{Hash(jane), Hash(anon)}, CreatedAt: t0.Add(time.Hour)},
		{ID: "d2", Type: Delete, Erased: []string{Hash(jane)}, CreatedAt: t0.Add(3 * time.Hour)},
		{ID: "s1", Type: Suppress, Identifiers: []Identifier{{"user_id", "bob"}}, CreatedAt: t0},
	})
	for _, tc := range []struct {
		ids  []profile.Ident
		at   time.Duration
		want bool
	}{
		{[]profile.Ident{bob, jane}, 30 * time.Minute, true},
		{[]profile.Ident{anon}, time.Hour, true}, // received at the very moment
		{[]profile.Ident{anon}, 2 * time.Hour, false},
		{[]profile.Ident{jane}, 2 * time.Hour, true}, // erased again later
		{[]profile.Ident{jane}, 4 * time.Hour, false},
		{[]profile.Ident{bob}, 0, false},
	} {
		// Erased: one of the identifiers was erased at or after the event.
		at, ok := e.ErasedAt(tc.ids)
		if got := ok && !t0.Add(tc.at).After(at); got != tc.want {
			t.Errorf("erased(%v, +%v) = %v (ErasedAt %v, %v), want %v", tc.ids, tc.at, got, at, ok, tc.want)
		}
	}
	if e.Len() != 2 {
		t.Errorf("list holds %d identifiers, want 2", e.Len())
	}
	var s Suppressions
	s.Update([]Regulation{
		{ID: "s1", Type: Suppress, Identifiers: []Identifier{{"email", "jane@x"}}, CreatedAt: t0},
		{ID: "d1", Type: Delete, Identifiers: []Identifier{{"email", "jane@x"}}, CreatedAt: t0.Add(time.Hour)},
	})
	if !s.Active("s1") {
		t.Error("a delete lifted a suppression")
	}
}

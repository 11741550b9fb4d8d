package identity_test

import (
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
)

// Segment's documented identity behaviour, on 3 partitions, each case
// drained in several interleavings.
func TestSegmentConformance(t *testing.T) {
	tests := []struct {
		name   string
		events []string
		check  func(t *testing.T, s snapshot)
	}{
		{
			name: "a second user id with a known email gets its own profile without the email",
			events: []string{
				`{"type":"identify","userId":"abc123","traits":{"email":"jane@x.com"},"messageId":"1","timestamp":"2026-01-01T00:00:01Z"}`,
				`{"type":"identify","userId":"abc456","traits":{"email":"Jane@X.com "},"messageId":"2","timestamp":"2026-01-01T00:00:02Z"}`,
			},
			check: func(t *testing.T, s snapshot) {
				a, b := s.profileOf("user_id:abc123"), s.profileOf("user_id:abc456")
				if a == nil || b == nil || a == b {
					t.Fatalf("want two profiles:\n%s", s.describe())
				}
				if !a.Has(ident("email", "jane@x.com")) || b.Has(ident("email", "jane@x.com")) {
					t.Errorf("email must stay with abc123 only:\n%s", s.describe())
				}
			},
		},
		{
			name: "an anonymous id shared by two users who log in one after the other never merges them",
			events: []string{
				`{"type":"page","anonymousId":"anon-1","messageId":"1","timestamp":"2026-01-01T00:00:01Z"}`,
				`{"type":"identify","userId":"u1","anonymousId":"anon-1","messageId":"2","timestamp":"2026-01-01T00:00:02Z"}`,
				`{"type":"track","userId":"u2","anonymousId":"anon-1","event":"Login","messageId":"3","timestamp":"2026-01-01T00:00:03Z"}`,
			},
			check: func(t *testing.T, s snapshot) {
				a, b := s.profileOf("user_id:u1"), s.profileOf("user_id:u2")
				if a == nil || b == nil || a == b {
					t.Fatalf("u1 and u2 must stay apart:\n%s", s.describe())
				}
				if s.profileOf("anonymous_id:anon-1") != a {
					t.Errorf("anon-1 must stay with u1, who logged in first:\n%s", s.describe())
				}
				if a.Events != 2 || b.Events != 1 {
					t.Errorf("events: u1 %d (want 2), u2 %d (want 1)", a.Events, b.Events)
				}
			},
		},
		{
			name: "alias merges the anonymous history into the user",
			events: []string{
				`{"type":"page","anonymousId":"anon-9","messageId":"1","timestamp":"2026-01-01T00:00:01Z"}`,
				`{"type":"track","userId":"u9","event":"Signed Up","messageId":"2","timestamp":"2026-01-01T00:00:02Z"}`,
				`{"type":"alias","userId":"u9","previousId":"anon-9","messageId":"3","timestamp":"2026-01-01T00:00:03Z"}`,
			},
			check: func(t *testing.T, s snapshot) {
				p := s.profileOf("user_id:u9")
				if p == nil || p != s.profileOf("anonymous_id:anon-9") || len(s.live) != 1 {
					t.Fatalf("alias must merge into one profile:\n%s", s.describe())
				}
				if p.Events != 3 || len(p.MergedFrom) != 1 {
					t.Errorf("merged profile: %d events (want 3), merged from %v", p.Events, p.MergedFrom)
				}
			},
		},
		{
			name: "blocked values are ignored as identifiers",
			events: []string{
				`{"type":"identify","userId":"u1","traits":{"email":"undefined"},"anonymousId":"null","messageId":"1"}`,
				`{"type":"identify","userId":"u2","traits":{"email":"undefined"},"anonymousId":"null","messageId":"2"}`,
			},
			check: func(t *testing.T, s snapshot) {
				if len(s.live) != 2 {
					t.Fatalf("blocked values must not merge:\n%s", s.describe())
				}
				for _, p := range s.live {
					if len(p.Identifiers) != 1 {
						t.Errorf("profile %s holds %v, want only its user id", p.ID, p.Identifiers)
					}
				}
			},
		},
		{
			name: "limits drop the lowest-priority identifiers",
			events: []string{
				`{"type":"identify","userId":"u1","traits":{"email":"a@x"},"messageId":"1","timestamp":"2026-01-01T00:00:01Z"}`,
				`{"type":"identify","userId":"u1","traits":{"email":"b@x"},"messageId":"2","timestamp":"2026-01-01T00:00:02Z"}`,
				`{"type":"identify","userId":"u1","traits":{"email":"c@x"},"messageId":"3","timestamp":"2026-01-01T00:00:03Z"}`,
			},
			check: func(t *testing.T, s snapshot) {
				p := s.profileOf("user_id:u1")
				if p == nil || !p.Has(ident("email", "a@x")) || !p.Has(ident("email", "b@x")) || p.Has(ident("email", "c@x")) {
					t.Fatalf("email limit 2 keeps the first two:\n%s", s.describe())
				}
			},
		},
		{
			name: "a repeated messageId is counted once",
			events: []string{
				`{"type":"track","userId":"u1","event":"Paid","messageId":"m-1"}`,
				`{"type":"track","userId":"u1","event":"Paid","messageId":"m-1"}`,
			},
			check: func(t *testing.T, s snapshot) {
				if p := s.profileOf("user_id:u1"); p == nil || p.Counts["Paid"] != 1 {
					t.Fatalf("retried event counted twice:\n%s", s.describe())
				}
			},
		},
	}
	rules := config.DefaultIdentity()
	rules.Types[1].Limit = 2 // email
	compiled, err := identity.NewRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for seed := int64(0); seed < 5; seed++ {
			t.Run(tt.name, func(t *testing.T) {
				h := newHub(t, 3, rules)
				pick := picker(seed)
				for _, e := range tt.events {
					h.send(e)
					if err := h.d.Drain(pick); err != nil {
						t.Fatal(err)
					}
				}
				s := h.state()
				events := len(tt.events)
				if tt.name == "a repeated messageId is counted once" {
					events--
				}
				s.check(t, compiled, events)
				tt.check(t, s)
			})
		}
	}
}

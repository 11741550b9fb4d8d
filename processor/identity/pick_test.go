package identity_test

import (
	"math/rand/v2"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/valyala/fastjson"
)

func ident(t, v string) profile.Ident { return profile.Ident{Type: t, Value: v} }

// picker returns a seeded chooser of the next partition to deliver, so a
// failing interleaving can be replayed from its seed.
func picker(seed int64) func(n int) int {
	if seed == 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(uint64(seed), 7))
	return func(n int) int { return r.IntN(n) }
}

// parse extracts identifiers from event JSON with the product's rules.
type parse struct{ p fastjson.Parser }

func newParse() *parse { return &parse{} }

func (p *parse) extract(rules *identity.Rules, event string) []string {
	v, err := p.p.Parse(event)
	if err != nil {
		panic(err)
	}
	var out []string
	for _, id := range rules.Extract(v) {
		out = append(out, id.String())
	}
	return out
}

func newRulesT(t *testing.T) (*identity.Rules, error) {
	t.Helper()
	r, err := identity.NewRules(config.DefaultIdentity())
	if err != nil {
		t.Fatal(err)
	}
	return r, nil
}

func TestRouting(t *testing.T) {
	rules, _ := newRulesT(t)
	route := rules.Routing()
	for _, tc := range []struct{ event, want string }{
		{`{"userId":"u1","anonymousId":"a1"}`, "user_id:u1"},
		{`{"anonymousId":"a1","traits":{"email":"Ann@X.com"}}`, "email:ann@x.com"},
		{`{"anonymousId":"a1"}`, "anonymous_id:a1"},
		{`{"userId":"null"}`, ""},
		{`not json`, ""},
	} {
		if got := string(route([]byte(tc.event))); got != tc.want {
			t.Errorf("Routing(%s) = %q, want %q", tc.event, got, tc.want)
		}
	}
}

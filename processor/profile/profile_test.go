package profile

import (
	"reflect"
	"testing"

	"github.com/valyala/fastjson"
)

func apply(t *testing.T, p *Profile, event string) {
	t.Helper()
	v, err := fastjson.Parse(event)
	if err != nil {
		t.Fatal(err)
	}
	p.ApplyEvent(v, []byte(event), parseMillis(string(v.GetStringBytes("timestamp"))), Options{Keep: 3, PurchaseEvent: "Order Completed", SpendProperty: "revenue"})
}

func TestTraits(t *testing.T) {
	tests := []struct {
		name   string
		events []string
		want   map[string]string
	}{
		{"identify sets", []string{`{"type":"identify","timestamp":"2026-01-01T00:00:01Z","traits":{"plan":"pro","age":41}}`},
			map[string]string{"plan": `"pro"`, "age": `41`}},
		{"latest timestamp wins, whatever the arrival order", []string{
			`{"type":"identify","timestamp":"2026-01-01T00:00:05Z","traits":{"plan":"team"}}`,
			`{"type":"identify","timestamp":"2026-01-01T00:00:01Z","traits":{"plan":"free"}}`},
			map[string]string{"plan": `"team"`}},
		{"null deletes, and an older value arriving late stays deleted", []string{
			`{"type":"identify","timestamp":"2026-01-01T00:00:01Z","traits":{"plan":"pro"}}`,
			`{"type":"identify","timestamp":"2026-01-01T00:00:03Z","traits":{"plan":null}}`,
			`{"type":"identify","timestamp":"2026-01-01T00:00:02Z","traits":{"plan":"free"}}`},
			map[string]string{}},
		{"group traits are the account's", []string{
			`{"type":"identify","timestamp":"2026-01-01T00:00:01Z","traits":{"name":"Jane"}}`,
			`{"type":"group","groupId":"g1","timestamp":"2026-01-01T00:00:02Z","traits":{"name":"Initech"}}`},
			map[string]string{"name": `"Jane"`, "group_id": `"g1"`, "group.name": `"Initech"`}},
		{"context.traits on any call", []string{`{"type":"track","event":"x","timestamp":"2026-01-01T00:00:01Z","context":{"traits":{"email":"a@b"}}}`},
			map[string]string{"email": `"a@b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Profile
			for _, e := range tt.events {
				apply(t, &p, e)
			}
			got := map[string]string{}
			for k, v := range p.Traits {
				if v.Value != nil {
					got[k] = string(v.Value)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("traits %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRecentKeepsNewestAndEncodingRoundTrips(t *testing.T) {
	var p Profile
	p.ID, p.Created = "p1", 7
	for _, ts := range []string{"03", "01", "05", "02", "04"} {
		apply(t, &p, `{"type":"track","event":"e`+ts+`","timestamp":"2026-01-01T00:00:`+ts+`Z"}`)
	}
	var names []string
	for _, r := range p.Recent {
		names = append(names, fastjson.GetString(r, "event"))
	}
	if want := []string{"e03", "e04", "e05"}; !reflect.DeepEqual(names, want) {
		t.Errorf("recent %v, want %v", names, want)
	}
	if p.Events != 5 || p.FirstSeen == 0 || p.LastSeen <= p.FirstSeen {
		t.Errorf("events %d, seen %d..%d", p.Events, p.FirstSeen, p.LastSeen)
	}
	b, _ := p.MarshalBinary()
	var q Profile
	if err := q.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if b2, _ := q.MarshalBinary(); string(b2) != string(b) || q.ID != p.ID || q.Events != p.Events || len(q.Recent) != 3 {
		t.Errorf("round trip:\n%+v\n%+v", p, q)
	}
	for i := range b {
		var r Profile
		if err := r.UnmarshalBinary(b[:i]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", i, len(b))
		}
	}
}

func TestAbsorb(t *testing.T) {
	var a, b Profile
	a.ID, b.ID = "a", "b"
	apply(t, &a, `{"type":"identify","timestamp":"2026-01-01T00:00:01Z","traits":{"plan":"free"}}`)
	apply(t, &b, `{"type":"identify","timestamp":"2026-01-01T00:00:02Z","traits":{"plan":"pro"}}`)
	apply(t, &b, `{"type":"track","event":"Paid","timestamp":"2026-01-01T00:00:00Z"}`)
	a.Identifiers = []Ident{{"user_id", "1"}}
	b.Identifiers = []Ident{{"user_id", "1"}, {"email", "x@y"}}
	b.MergedFrom = []string{"c"}
	a.Absorb(&b, 3)
	if string(a.Traits["plan"].Value) != `"pro"` || a.Events != 3 || a.Counts["Paid"] != 1 || len(a.Identifiers) != 2 ||
		!reflect.DeepEqual(a.MergedFrom, []string{"b", "c"}) || a.FirstSeen != parseMillis("2026-01-01T00:00:00Z") {
		t.Errorf("absorbed: %+v", a)
	}
}

func TestPurchasesByDay(t *testing.T) {
	var p, q Profile
	apply(t, &p, `{"type":"track","event":"Order Completed","timestamp":"2026-01-01T09:00:00Z","properties":{"revenue":10}}`)
	apply(t, &p, `{"type":"track","event":"Order Completed","timestamp":"2026-01-01T17:00:00Z","properties":{"revenue":2.5}}`)
	apply(t, &p, `{"type":"track","event":"Viewed","timestamp":"2026-01-02T17:00:00Z","properties":{"revenue":99}}`)
	apply(t, &q, `{"type":"track","event":"Order Completed","timestamp":"2026-01-03T00:00:00Z","properties":{"revenue":4}}`)
	p.Absorb(&q, 3)
	day := int32(parseMillis("2026-01-01T00:00:00Z") / 86_400_000)
	want := map[int32]float64{day: 12.5, day + 2: 4}
	if !reflect.DeepEqual(p.Purchases, want) {
		t.Errorf("purchases %v, want %v", p.Purchases, want)
	}
	b, _ := p.MarshalBinary()
	var r Profile
	if err := r.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(r.Purchases, want) {
		t.Errorf("decoded purchases %v, %v", r.Purchases, err)
	}
}

func TestConsent(t *testing.T) {
	consent := func(ts, prefs string) string {
		return `{"type":"track","event":"x","timestamp":"` + ts + `","context":{"consent":{"categoryPreferences":` + prefs + `}}}`
	}
	var p, q Profile
	apply(t, &p, consent("2026-01-01T00:00:02Z", `{"marketing":true,"analytics":true,"ads":"yes"}`))
	apply(t, &p, consent("2026-01-01T00:00:01Z", `{"marketing":false}`)) // older: loses
	apply(t, &q, consent("2026-01-01T00:00:03Z", `{"analytics":false}`))
	p.Absorb(&q, 3) // q's later word on analytics wins
	for _, tc := range []struct {
		categories []string
		want       bool
	}{
		{nil, true},
		{[]string{"marketing"}, true},
		{[]string{"analytics"}, false},
		{[]string{"marketing", "analytics"}, false},
		{[]string{"ads"}, false},   // not a boolean: not a statement
		{[]string{"email"}, false}, // never stated: not granted
	} {
		if got := p.Consented(tc.categories); got != tc.want {
			t.Errorf("Consented(%v) = %v, want %v; consent %+v", tc.categories, got, tc.want, p.Consent)
		}
	}
	b, _ := p.MarshalBinary()
	var r Profile
	if err := r.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(r.Consent, p.Consent) {
		t.Errorf("decoded consent %+v, %v; want %+v", r.Consent, err, p.Consent)
	}
	// A version 2 record (before consent) still decodes.
	old := Profile{ID: "p", Purchases: map[int32]float64{3: 1}}
	v3 := old.AppendBinary(nil)
	v2 := append([]byte{2}, v3[1:len(v3)-1]...) // no consent count
	var o Profile
	if err := o.UnmarshalBinary(v2); err != nil || o.ID != "p" || o.Purchases[3] != 1 || o.Consent != nil {
		t.Errorf("version 2 decoded as %+v, %v", o, err)
	}
}

func TestParseIdent(t *testing.T) {
	tests := []struct {
		in      string
		want    Ident
		wantErr bool
	}{
		{in: "email:a@example.com", want: Ident{Type: "email", Value: "a@example.com"}},
		{in: "user_id:a:b", want: Ident{Type: "user_id", Value: "a:b"}}, // the first colon splits
		{in: "email:", wantErr: true},
		{in: ":a@example.com", wantErr: true},
		{in: "email", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseIdent(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseIdent(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("ParseIdent(%q).String() = %q", tc.in, got.String())
		}
	}
	// The profile stage parses every identifier of every op.
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseIdent("email:a@example.com") }); n != 0 {
		t.Errorf("ParseIdent allocates %v times, want 0", n)
	}
}

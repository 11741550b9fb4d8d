package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
)

func TestNextBatch(t *testing.T) {
	for _, tc := range []struct {
		profiles []string // of the pending activations, in order
		n        int
		want     string // the batches, by index into profiles
	}{
		{[]string{"a", "b", "c"}, 10, "[0 1 2]"},
		{[]string{"a", "b", "c"}, 2, "[0 1] [2]"},
		{[]string{"a", "a", "b", "a", "c"}, 10, "[0 2 4] [1] [3]"},
		// A profile left out of a full batch keeps its later activations
		// out too, so its order holds.
		{[]string{"a", "b", "c", "a", "d"}, 2, "[0 1] [2 3] [4]"},
		{[]string{"a", "b", "b", "c"}, 1, "[0] [1] [2] [3]"},
	} {
		t.Run(strings.Join(tc.profiles, ""), func(t *testing.T) {
			var pending []*item
			index := map[*item]int{}
			for i, p := range tc.profiles {
				it := &item{act: Activation{ProfileID: p}}
				pending = append(pending, it)
				index[it] = i
			}
			var got []string
			for len(pending) > 0 {
				var batch []*item
				batch, pending = nextBatch(pending, tc.n)
				var ids []int
				for _, it := range batch {
					ids = append(ids, index[it])
				}
				got = append(got, fmt.Sprint(ids))
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("batches %s, want %s", s, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	r := &Runner{d: config.Delivery{BackoffMin: config.Duration(200 * time.Millisecond), BackoffMax: config.Duration(time.Second)}}
	for round, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		for range 100 {
			if d := r.backoff(round + 1); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", round+1, d, want/2, want)
			}
		}
	}
}

// runnerWithLog returns a Runner that has logged n deliveries, the i-th
// of activation "a<i>".
func runnerWithLog(t *testing.T, n int) *Runner {
	t.Helper()
	r, err := NewRunner("tessera", config.Destination{Name: "hook", Type: "webhook"}, nopSink{}, Brokers("k:9092"))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		status := []string{StatusDelivered, StatusRetrying, StatusDeadLettered}[i%3]
		it := &item{rec: &kgo.Record{Timestamp: at}, act: Activation{ID: fmt.Sprintf("a%d", i), Type: AudienceEntered, Name: "vip", ProfileID: "p"}, attempts: 1}
		if status != StatusDelivered {
			it.err = fmt.Errorf("failure %d", i)
		}
		r.logDelivery(it, status, at.Add(time.Duration(i)*time.Millisecond), time.Duration(i)*time.Millisecond)
	}
	return r
}

func TestDeliveryLogKeepsTheLast1000(t *testing.T) {
	for _, n := range []int{0, 1, 999, 1000, 1001, 2500} {
		r := runnerWithLog(t, n)
		log := r.Deliveries()
		if len(log) != min(n, 1000) {
			t.Fatalf("after %d: %d entries, want %d", n, len(log), min(n, 1000))
		}
		for i, d := range log {
			if want := fmt.Sprintf("a%d", n-1-i); d.ActivationID != want {
				t.Fatalf("after %d: entry %d is %s, want %s (newest first)", n, i, d.ActivationID, want)
			}
		}
	}
}

func TestRegistryRoutes(t *testing.T) {
	g := NewRegistry()
	r := runnerWithLog(t, 1200)
	if err := g.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := g.Add(r); err == nil || err.Error() != "destination hook is registered already" {
		t.Errorf("adding twice: %v", err)
	}
	mux := http.NewServeMux()
	g.Register(func(p string, h http.Handler) { mux.Handle(p, h) })
	for _, tc := range []struct {
		path   string
		status int
		check  func(t *testing.T, body []byte)
	}{
		{"/v1/destinations/hook/deliveries", 200, func(t *testing.T, body []byte) {
			var v struct {
				Destination string
				Deliveries  []map[string]any
			}
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatal(err)
			}
			if v.Destination != "hook" || len(v.Deliveries) != 100 || v.Deliveries[0]["activation_id"] != "a1199" {
				t.Errorf("got %s…, want the newest 100", body[:200])
			}
		}},
		{"/v1/destinations/hook/deliveries?limit=2&status=dead_lettered", 200, func(t *testing.T, body []byte) {
			want := `{"deliveries":[` +
				`{"activation_id":"a1199","type":"audience_entered","name":"vip","profile_id":"p","status":"dead_lettered","attempts":1,"error":"failure 1199","at":"2026-01-01T00:00:01.199Z","latency_ms":1199},` +
				`{"activation_id":"a1196","type":"audience_entered","name":"vip","profile_id":"p","status":"dead_lettered","attempts":1,"error":"failure 1196","at":"2026-01-01T00:00:01.196Z","latency_ms":1196}` +
				`],"destination":"hook"}` + "\n"
			if string(body) != want {
				t.Errorf("got  %s\nwant %s", body, want)
			}
		}},
		{"/v1/destinations/hook/deliveries?limit=1001", 400, func(t *testing.T, body []byte) {
			if !strings.Contains(string(body), `limit must be a number from 1 to 1000, got \"1001\"`) {
				t.Errorf("got %s", body)
			}
		}},
		{"/v1/destinations/hook/deliveries?status=lost", 400, func(t *testing.T, body []byte) {
			if !strings.Contains(string(body), `status must be delivered, retrying or dead_lettered, got \"lost\"`) {
				t.Errorf("got %s", body)
			}
		}},
		{"/v1/destinations/nope/deliveries", 404, func(t *testing.T, body []byte) {
			if string(body) != `{"error":"no destination named \"nope\" is running"}`+"\n" {
				t.Errorf("got %s", body)
			}
		}},
		{"/v1/destinations/hook/status", 200, func(t *testing.T, body []byte) {
			want := `{"name":"hook","type":"webhook","state":"starting","connected":false,"sent":0,"failed":0,"retried":0,"dead_lettered":0,"filtered":0,"lag":0}` + "\n"
			if string(body) != want {
				t.Errorf("got  %s\nwant %s", body, want)
			}
		}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if w.Code != tc.status || w.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("HTTP %d %q, want %d JSON: %s", w.Code, w.Header().Get("Content-Type"), tc.status, w.Body)
			}
			tc.check(t, w.Body.Bytes())
		})
	}
	if got, ok := g.Get("hook"); !ok || got.Status().Name != "hook" {
		t.Errorf("Get(hook) = %v, %v", got, ok)
	}
	if g.Remove("hook") != r {
		t.Error("Remove did not return the Runner")
	}
	if _, ok := g.Get("hook"); ok {
		t.Error("the Runner is still there after Remove")
	}
}

// nopSink delivers nothing.
type nopSink struct{}

func (nopSink) Connect(context.Context) error                  { return nil }
func (nopSink) WriteBatch(context.Context, []Activation) error { return nil }
func (nopSink) Close(context.Context) error                    { return nil }

func TestWantsRouting(t *testing.T) {
	enter := func(name string, dests ...string) Activation {
		return Activation{Type: AudienceEntered, Name: name, Destinations: dests}
	}
	withConsent := func(a Activation, consent string) Activation {
		a.Profile = json.RawMessage(`{"id":"p","consent":` + consent + `}`)
		return a
	}
	for _, tc := range []struct {
		desc       string
		audiences  []string // the destination's filter
		types      []string
		categories []string
		act        Activation
		want       bool
	}{
		{"no filter, no routes: takes all", nil, nil, nil, enter("vip"), true},
		{"filter names another audience", []string{"churn"}, nil, nil, enter("vip"), false},
		{"filter names it", []string{"vip"}, nil, nil, enter("vip"), true},
		{"routed here", nil, nil, nil, enter("vip", "crm", "hook"), true},
		{"routed elsewhere: a take-all destination stays out", nil, nil, nil, enter("vip", "crm"), false},
		{"routed elsewhere, but the filter names it", []string{"vip"}, nil, nil, enter("vip", "crm"), true},
		{"routed here though the filter names others", []string{"churn"}, nil, nil, enter("vip", "hook"), true},
		{"routed here, type filtered out", nil, []string{AudienceExited}, nil, enter("vip", "hook"), false},
		{"type filter takes it", nil, []string{AudienceEntered}, nil, enter("vip"), true},
		{"consent granted", nil, nil, []string{"marketing"}, withConsent(enter("vip"), `{"marketing":true}`), true},
		{"consent declined", nil, nil, []string{"marketing"}, withConsent(enter("vip"), `{"marketing":false,"analytics":true}`), false},
		{"consent never stated", nil, nil, []string{"marketing"}, withConsent(enter("vip"), `{}`), false},
		{"one of two categories declined", nil, nil, []string{"marketing", "analytics"}, withConsent(enter("vip"), `{"marketing":true,"analytics":false}`), false},
		{"no categories: consent does not apply", nil, nil, nil, withConsent(enter("vip"), `{"marketing":false}`), true},
		{"erasure notices go everywhere", []string{"churn"}, []string{AudienceEntered}, []string{"marketing"},
			withConsent(Activation{Type: ProfileDeleted, Destinations: []string{"crm"}}, `{}`), true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := &Runner{dest: config.Destination{Name: "hook", Categories: tc.categories}, audiences: set(tc.audiences), types: set(tc.types)}
			if got := r.wants(tc.act); got != tc.want {
				t.Errorf("wants(%+v) = %v, want %v", tc.act, got, tc.want)
			}
		})
	}
	// A destination that messages people never gets an erasure notice.
	r := &Runner{dest: config.Destination{Name: "mail"}, s: notifier{}}
	if r.wants(Activation{Type: ProfileDeleted}) || !r.wants(enter("vip")) {
		t.Error("a Notifier must get audience activations and no profile_deleted")
	}
}

// notifier is a Notifier that delivers nothing.
type notifier struct{ Sink }

func (notifier) Notifies() {}

func TestActivationRoundTrip(t *testing.T) {
	in := Activation{ID: "a1", Type: ProfileDeleted, Name: "", ProfileID: "p1",
		Timestamp: time.UnixMilli(1700000000123).UTC(), Profile: json.RawMessage(`{"id":"p1"}`),
		Destinations: []string{"crm", "hook"}}
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
}

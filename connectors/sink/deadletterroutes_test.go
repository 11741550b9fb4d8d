package sink_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// idleSink is a Sink the routes' test never runs.
type idleSink struct{}

func (idleSink) Connect(context.Context) error                       { return nil }
func (idleSink) WriteBatch(context.Context, []sink.Activation) error { return nil }
func (idleSink) Close(context.Context) error                         { return nil }

// TestDeadLetterRoutes: the list shows only the destination's dead
// letters, newest first, and how many are pending; a replay sends the
// pending ones and the list then shows them replayed; bad input and
// unknown destinations get clear errors.
func TestDeadLetterRoutes(t *testing.T) {
	e := newEnv(t, 1)
	ctx := context.Background()
	reg := sink.NewRegistry()
	for _, name := range []string{"hook", "crm"} {
		r, err := sink.NewRunner(app, config.Destination{Name: name, Type: "webhook"}, idleSink{}, sink.Brokers(e.brokers...))
		if err != nil {
			t.Fatal(err)
		}
		if err := reg.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	sink.NewDeadLetterRoutes(reg, app, sink.Brokers(e.brokers...)).Register(func(p string, h http.Handler) { mux.Handle(p, h) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	type listing struct {
		Total       int `json:"total"`
		Pending     int `json:"pending"`
		DeadLetters []struct {
			ActivationID string `json:"activation_id"`
			Error        string `json:"error"`
			Attempts     int    `json:"attempts"`
			Replayed     bool   `json:"replayed"`
		} `json:"dead_letters"`
		Replayed int    `json:"replayed"`
		Error    string `json:"error"`
	}
	call := func(method, path string, wantStatus int) listing {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l listing
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s = %d %+v, want %d", method, path, resp.StatusCode, l, wantStatus)
		}
		return l
	}

	if l := call("GET", "/v1/destinations/hook/dead-letters", 200); l.Total != 0 || len(l.DeadLetters) != 0 {
		t.Errorf("before any dead letter: %+v", l)
	}
	if _, err := e.adm.CreateTopic(ctx, 1, 1, nil, sink.DLQTopic(app)); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.ProduceSync(ctx, deadLetter(t, "hook", "p1", "t1"), deadLetter(t, "crm", "p2", "t22"),
		deadLetter(t, "hook", "p3", "t333")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	l := call("GET", "/v1/destinations/hook/dead-letters", 200)
	if l.Total != 2 || l.Pending != 2 || len(l.DeadLetters) != 2 {
		t.Fatalf("hook's dead letters: %+v, want 2 pending", l)
	}
	if first := l.DeadLetters[0]; first.ActivationID != "p3-4" || first.Error != "HTTP 500" || first.Attempts != 8 || first.Replayed {
		t.Errorf("newest dead letter: %+v, want p3-4 after 8 attempts with HTTP 500, not replayed", first)
	}
	if l := call("GET", "/v1/destinations/hook/dead-letters?limit=1", 200); len(l.DeadLetters) != 1 || l.Total != 2 {
		t.Errorf("limit=1: %+v", l)
	}

	if r := call("POST", "/v1/destinations/hook/replay", 200); r.Replayed != 2 {
		t.Errorf("replay: %+v, want 2 replayed", r)
	}
	if r := call("POST", "/v1/destinations/hook/replay", 200); r.Replayed != 0 {
		t.Errorf("second replay: %+v, want 0", r)
	}
	if r := call("POST", "/v1/destinations/hook/replay?all=true", 200); r.Replayed != 2 {
		t.Errorf("replay all: %+v, want 2", r)
	}
	l = call("GET", "/v1/destinations/hook/dead-letters", 200)
	if l.Pending != 0 || !l.DeadLetters[0].Replayed || !l.DeadLetters[1].Replayed {
		t.Errorf("after replay: %+v, want all replayed", l)
	}
	if l := call("GET", "/v1/destinations/crm/dead-letters", 200); l.Pending != 1 || l.DeadLetters[0].ActivationID != "p2-3" {
		t.Errorf("crm untouched by hook's replay: %+v", l)
	}

	for _, tc := range []struct {
		method, path, want string
		status             int
	}{
		{"GET", "/v1/destinations/nope/dead-letters", `no destination named "nope" is running`, 404},
		{"POST", "/v1/destinations/nope/replay", `no destination named "nope" is running`, 404},
		{"GET", "/v1/destinations/hook/dead-letters?limit=0", `limit must be a number from 1 to 1000, got "0"`, 400},
		{"POST", "/v1/destinations/hook/replay?all=yes", `all must be true or false, got "yes"`, 400},
	} {
		if l := call(tc.method, tc.path, tc.status); l.Error != tc.want {
			t.Errorf("%s %s: error %q, want %q", tc.method, tc.path, l.Error, tc.want)
		}
	}
}

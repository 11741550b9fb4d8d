package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
	"github.com/tessera-cdp/tessera/connectors/slack"
)

const (
	urlEnv = "TESSERA_TEST_SLACK_URL"
	path   = "/services/T000/B000/XXXX"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newReceiver(t, env.Now)
	}})
}

// receiver is a Slack incoming webhook: it takes only the documented
// request, answers "ok", and fails as Slack does on demand.
type receiver struct {
	t   *testing.T
	now func() time.Time
	srv *httptest.Server

	*sinktest.Faults
}

func newReceiver(t *testing.T, now func() time.Time) *receiver {
	r := &receiver{t: t, now: now, Faults: sinktest.NewFaults()}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.Heal()
		r.srv.Close()
	})
	return r
}

func (r *receiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.SecretEnv = "slack", urlEnv
	s, err := slack.New(dest, func(k string) string {
		if k == urlEnv {
			return r.srv.URL + path
		}
		return ""
	})
	return dest, s, err
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	text := r.check(req)
	rec := parseDefault(text)
	rec.Key, rec.At = req.Header.Get(sink.IdempotencyKeyHeader), r.now()

	kind, retryAfter, stall := r.Record(rec)

	w.Header().Set("Content-Type", "text/html")
	switch kind {
	case sinktest.Down:
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "rollup_error")
	case sinktest.Reject:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "invalid_payload")
	case sinktest.Throttle:
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "rate_limited")
	case sinktest.Stall:
		select {
		case <-stall:
			w.WriteHeader(http.StatusInternalServerError)
		case <-req.Context().Done():
		}
	default:
		io.WriteString(w, "ok")
	}
}

// check verifies the request is Slack's documented one and returns its
// text.
func (r *receiver) check(req *http.Request) string {
	t := r.t
	if req.Method != http.MethodPost || req.URL.Path != path {
		t.Errorf("request %s %s, want POST %s", req.Method, req.URL.Path, path)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var msg struct {
		Text string `json:"text"`
	}
	d := json.NewDecoder(req.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&msg); err != nil || msg.Text == "" {
		t.Errorf("body is not {\"text\": \"…\"}: %v", err)
	}
	return msg.Text
}

// parseDefault reads what DefaultTemplate wrote.
func parseDefault(text string) sinktest.Received {
	f := strings.Fields(text)
	if len(f) < 4 {
		return sinktest.Received{}
	}
	rec := sinktest.Received{ProfileID: f[1], Name: f[len(f)-1]}
	switch {
	case strings.Contains(text, " entered the audience "):
		rec.Type = sink.AudienceEntered
	case strings.Contains(text, " left the audience "):
		rec.Type = sink.AudienceExited
	case strings.Contains(text, " triggered "):
		rec.Type = sink.EventTriggered
	}
	return rec
}

func TestNew(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{urlEnv: "https://hooks.slack.com/services/T/B/X", "BAD_URL": "hooks.slack.com/x"}[k]
	}
	for _, tc := range []struct {
		name    string
		dest    config.Destination
		wantErr string
	}{
		{"url", config.Destination{URL: "https://hooks.slack.com/services/T/B/X"}, ""},
		{"url from the environment", config.Destination{SecretEnv: urlEnv}, ""},
		{"neither", config.Destination{}, "slack ops: url or secret_env (the variable holding the webhook URL) is required"},
		{"both", config.Destination{URL: "https://x", SecretEnv: urlEnv}, "slack ops: set url or secret_env (the variable holding the webhook URL), not both"},
		{"unset variable", config.Destination{SecretEnv: "NOPE"}, "slack ops: the webhook URL $NOPE is empty or unset"},
		{"not a URL", config.Destination{SecretEnv: "BAD_URL"}, "slack ops: the webhook URL must be an absolute http or https URL"},
		{"an unused field", config.Destination{URL: "https://x", Topic: "t"}, "slack ops: topic is not used by slack destinations"},
		{"bad template", config.Destination{URL: "https://x", Template: "{{if}}"}, "slack ops: parsing template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.dest.Name, tc.dest.Type = "ops", "slack"
			_, err := slack.New(tc.dest, getenv)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New error %v, want one containing %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hooks.slack.com") {
				t.Errorf("the error %q shows the webhook URL", err)
			}
		})
	}
}

// TestMessages pins the exact request body for each activation type and a
// custom template.
func TestMessages(t *testing.T) {
	profile := json.RawMessage(`{"traits":{"email":"ada@example.com","first_name":"Ada"}}`)
	for _, tc := range []struct {
		name, template string
		a              sink.Activation
		want           string
	}{
		{"entered", "", sink.Activation{ID: "a", Type: sink.AudienceEntered, Name: "vip", ProfileID: "p1", Profile: profile},
			`{"text":"Profile p1 (ada@example.com) entered the audience vip"}`},
		{"exited without email", "", sink.Activation{ID: "a", Type: sink.AudienceExited, Name: "vip", ProfileID: "p2", Profile: json.RawMessage(`{"traits":{}}`)},
			`{"text":"Profile p2 left the audience vip"}`},
		{"triggered", "", sink.Activation{ID: "a", Type: sink.EventTriggered, Name: "big_order", ProfileID: "p1", Profile: profile},
			`{"text":"Profile p1 (ada@example.com) triggered big_order"}`},
		{"custom", `:tada: {{.ProfileMap.traits.first_name}} joined *{{.Name}}* <https://crm/{{.ProfileID}}|open>`,
			sink.Activation{ID: "a", Type: sink.AudienceEntered, Name: "vip", ProfileID: "p1", Profile: profile},
			`{"text":":tada: Ada joined *vip* \u003chttps://crm/p1|open\u003e"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ = io.ReadAll(r.Body)
				if k := r.Header.Get(sink.IdempotencyKeyHeader); k != tc.a.ID {
					t.Errorf("Idempotency-Key %q, want %q", k, tc.a.ID)
				}
				io.WriteString(w, "ok")
			}))
			defer srv.Close()
			s, err := slack.New(config.Destination{Name: "ops", Type: "slack", URL: srv.URL, Template: tc.template}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.WriteBatch(context.Background(), []sink.Activation{tc.a}); err != nil {
				t.Fatal(err)
			}
			if got := string(bytes.TrimSpace(body)); got != tc.want {
				t.Errorf("body %s, want %s", got, tc.want)
			}
		})
	}
}

func TestAnswers(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body, want string
	}{
		{200, "ok", "ok"},
		{200, "ok\n", "ok"},
		{200, "something else", "permanent"},
		{400, "invalid_payload", "permanent"},
		{403, "action_prohibited", "permanent"},
		{404, "no_service", "permanent"},
		{410, "channel_is_archived", "permanent"},
		{500, "rollup_error", "retry"},
	} {
		t.Run(strconv.Itoa(tc.status)+" "+tc.body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			s, err := slack.New(config.Destination{Name: "ops", Type: "slack", URL: srv.URL}, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = s.WriteBatch(context.Background(), []sink.Activation{{ID: "a", Type: sink.AudienceEntered}})
			got := "retry"
			switch {
			case err == nil:
				got = "ok"
			case sink.IsPermanent(err):
				got = "permanent"
			}
			if got != tc.want {
				t.Fatalf("HTTP %d %q: %s (%v), want %s", tc.status, tc.body, got, err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), strings.TrimSpace(tc.body)) {
				t.Errorf("error %q does not quote Slack's answer", err)
			}
		})
	}
}

// TestThrottleHoldsTheRestOfTheBatch: after a 429, the batch's remaining
// messages are not sent, and fail with the same Retry-After.
func TestThrottleHoldsTheRestOfTheBatch(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, r.Header.Get(sink.IdempotencyKeyHeader))
		if len(sent) == 2 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	s, err := slack.New(config.Destination{Name: "ops", Type: "slack", URL: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.WriteBatch(context.Background(), []sink.Activation{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}})
	var be *sink.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("WriteBatch: %v, want b, c and d failed", err)
	}
	for i := 1; i <= 3; i++ {
		if d, ok := sink.RetryAfterOf(be.Failed[i]); !ok || d != 3*time.Second {
			t.Errorf("#%d: %v, want Retry-After 3s", i, be.Failed[i])
		}
	}
	if strings.Join(sent, ",") != "a,b" {
		t.Errorf("sent %v, want a and b only", sent)
	}
}

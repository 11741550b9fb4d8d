package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

const (
	apiKey = "SG.test-key"
	keyEnv = "SENDGRID_API_KEY"
)

// request is what the receiver checks of each request; Body is the JSON
// decoded, so that key order and spacing do not matter but every key and
// value does.
type request struct {
	Method, Path, Auth, ContentType string
	Body                            any
}

type answer struct {
	status int
	header map[string]string
	body   string
}

// receiver plays SendGrid's Mail Send endpoint: it records every request
// and answers them in turn from answers (202 Accepted when they run out).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	answers  []answer
}

func newReceiver(t *testing.T, answers ...answer) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body any
		if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
			t.Errorf("the body is not JSON: %v", err)
		}
		r.mu.Lock()
		r.requests = append(r.requests, request{
			Method: req.Method, Path: req.URL.Path, Auth: req.Header.Get("Authorization"),
			ContentType: req.Header.Get("Content-Type"), Body: body,
		})
		a := answer{status: http.StatusAccepted}
		if len(r.answers) > 0 {
			a, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

func env(k string) string {
	if k == keyEnv {
		return apiKey
	}
	return ""
}

func destination(base string) config.Destination {
	return config.Destination{Name: "mail", Type: "sendgrid", URL: base, SecretEnv: keyEnv, From: "Shop CRM <crm@shop.test>"}
}

func activation(id, typ, name, profileID string, traits map[string]any) sink.Activation {
	p, _ := json.Marshal(map[string]any{
		"id": profileID, "identifiers": []map[string]string{{"type": "user_id", "value": "u-" + profileID}},
		"traits": traits, "features": map[string]any{}, "predictions": map[string]any{}, "audiences": []string{name},
	})
	return sink.Activation{ID: id, Type: typ, Name: name, ProfileID: profileID, Timestamp: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC), Profile: p}
}

func newTestSink(t *testing.T, dest config.Destination) *Sink {
	t.Helper()
	s, err := newSink(dest, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// sendgridRequest is the documented request, its body given as JSON text.
func sendgridRequest(t *testing.T, body string) request {
	t.Helper()
	var b any
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("the wanted body: %v", err)
	}
	return request{Method: "POST", Path: "/v3/mail/send", Auth: "Bearer " + apiKey, ContentType: "application/json", Body: b}
}

func TestDelivery(t *testing.T) {
	ada := activation("act-1", sink.AudienceEntered, "vip", "p1", map[string]any{"email": "Ada L <ada@example.test>", "first_name": "Ada"})
	bob := activation("act-2", sink.AudienceExited, "vip", "p2", map[string]any{"email": "bob@example.test"})
	for _, tc := range []struct {
		name              string
		subject, template string
		batch             []sink.Activation
		want              []string
	}{
		{
			name:  "default templates",
			batch: []sink.Activation{ada, bob},
			want: []string{`{
				"personalizations": [{
					"to": [{"email": "ada@example.test", "name": "Ada L"}],
					"headers": {"X-Tessera-Activation-Id": "act-1"},
					"custom_args": {"tessera_activation_id": "act-1"}
				}],
				"from": {"email": "crm@shop.test", "name": "Shop CRM"},
				"subject": "Entered vip",
				"content": [{"type": "text/plain", "value": "Profile p1 entered the audience vip at 2026-03-01 12:30:05 UTC.\n\nActivation act-1\n"}]
			}`, `{
				"personalizations": [{
					"to": [{"email": "bob@example.test"}],
					"headers": {"X-Tessera-Activation-Id": "act-2"},
					"custom_args": {"tessera_activation_id": "act-2"}
				}],
				"from": {"email": "crm@shop.test", "name": "Shop CRM"},
				"subject": "Left vip",
				"content": [{"type": "text/plain", "value": "Profile p2 left the audience vip at 2026-03-01 12:30:05 UTC.\n\nActivation act-2\n"}]
			}`},
		},
		{
			name:    "own templates",
			subject: "Welcome, {{.ProfileMap.traits.first_name}}", template: "You are in {{.Name}} now.",
			batch: []sink.Activation{ada},
			want: []string{`{
				"personalizations": [{
					"to": [{"email": "ada@example.test", "name": "Ada L"}],
					"headers": {"X-Tessera-Activation-Id": "act-1"},
					"custom_args": {"tessera_activation_id": "act-1"}
				}],
				"from": {"email": "crm@shop.test", "name": "Shop CRM"},
				"subject": "Welcome, Ada",
				"content": [{"type": "text/plain", "value": "You are in vip now."}]
			}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t)
			dest := destination(r.URL)
			dest.Subject, dest.Template = tc.subject, tc.template
			s := newTestSink(t, dest)
			if err := s.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.WriteBatch(context.Background(), tc.batch); err != nil {
				t.Fatalf("WriteBatch: %v", err)
			}
			var want []request
			for _, b := range tc.want {
				want = append(want, sendgridRequest(t, b))
			}
			if got := r.received(); !reflect.DeepEqual(got, want) {
				t.Errorf("requests\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	batch := []sink.Activation{
		activation("a0", sink.AudienceEntered, "vip", "p0", map[string]any{"email": "a0@example.test"}),
		activation("a1", sink.AudienceEntered, "vip", "p1", map[string]any{"phone": "+15550001"}),
		activation("a2", sink.AudienceEntered, "vip", "p2", map[string]any{"email": "a2@example.test"}),
	}
	type outcome struct {
		permanent  bool
		retryAfter time.Duration
		contains   string
	}
	for _, tc := range []struct {
		name    string
		answers []answer
		sent    int
		want    map[int]outcome
	}{
		{
			name:    "400 is permanent, the batch goes on",
			answers: []answer{{status: 400, body: `{"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "http://sendgrid.com/docs"}]}`}},
			sent:    2,
			want: map[int]outcome{
				0: {permanent: true, contains: "400 Bad Request: SendGrid: personalizations.0.to.0.email: Does not contain a valid address."},
				1: {permanent: true, contains: `profile p1 has no "email" trait`},
			},
		},
		{
			name:    "429 with Retry-After",
			answers: []answer{{status: 429, header: map[string]string{"Retry-After": "30"}, body: `{"errors": [{"message": "too many requests"}]}`}},
			sent:    1,
			want: map[int]outcome{
				0: {retryAfter: 30 * time.Second, contains: "429 Too Many Requests: SendGrid: too many requests"},
				1: {retryAfter: 30 * time.Second, contains: "429"},
				2: {retryAfter: 30 * time.Second, contains: "429"},
			},
		},
		{
			name: "429 with X-RateLimit-Reset",
			answers: []answer{{status: 429, header: map[string]string{
				"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1772366412", // now + 12s
			}}},
			sent: 1,
			want: map[int]outcome{
				0: {retryAfter: 12 * time.Second, contains: "429"},
				1: {retryAfter: 12 * time.Second, contains: "429"},
				2: {retryAfter: 12 * time.Second, contains: "429"},
			},
		},
		{
			name:    "500 is retried",
			answers: []answer{{status: 202}, {status: 500}},
			sent:    2,
			want: map[int]outcome{
				1: {permanent: true, contains: "email"},
				2: {contains: "500 Internal Server Error"},
			},
		},
		{
			name:    "403 is permanent",
			answers: []answer{{status: 403, body: `{"errors": [{"message": "The from address does not match a verified Sender Identity."}]}`}, {status: 403}},
			sent:    2,
			want: map[int]outcome{
				0: {permanent: true, contains: "403 Forbidden: SendGrid: The from address does not match a verified Sender Identity."},
				1: {permanent: true, contains: "email"},
				2: {permanent: true, contains: "403"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.answers...)
			s := newTestSink(t, destination(r.URL))
			s.now = func() time.Time { return now }
			err := s.WriteBatch(context.Background(), batch)
			var be *sink.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("WriteBatch = %v, want a *sink.BatchError", err)
			}
			if len(be.Failed) != len(tc.want) {
				t.Errorf("failed %v, want %d of them", be.Failed, len(tc.want))
			}
			for i, w := range tc.want {
				err := be.Failed[i]
				if err == nil {
					t.Errorf("#%d did not fail", i)
					continue
				}
				ra, _ := sink.RetryAfterOf(err)
				if sink.IsPermanent(err) != w.permanent || ra != w.retryAfter || !strings.Contains(err.Error(), w.contains) {
					t.Errorf("#%d: %v (permanent %v, retry after %v), want permanent %v, retry after %v, containing %q",
						i, err, sink.IsPermanent(err), ra, w.permanent, w.retryAfter, w.contains)
				}
			}
			if got := len(r.received()); got != tc.sent {
				t.Errorf("%d requests reached SendGrid, want %d", got, tc.sent)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Destination)
		want string // the error's start; "" for none
	}{
		{"valid", func(*config.Destination) {}, ""},
		{"default url", func(d *config.Destination) { d.URL = "" }, ""},
		{"secret_env", func(d *config.Destination) { d.SecretEnv = "" }, `sendgrid destination "mail": secret_env: must name the variable holding the API key`},
		{"key unset", func(d *config.Destination) { d.SecretEnv = "NOPE" }, `sendgrid destination "mail": secret_env: variable NOPE is unset or empty`},
		{"from empty", func(d *config.Destination) { d.From = "" }, `sendgrid destination "mail": from: must not be empty`},
		{"from", func(d *config.Destination) { d.From = "crm" }, `sendgrid destination "mail": from: must be an email address, got "crm"`},
		{"url", func(d *config.Destination) { d.URL = "ftp://x" }, `sendgrid destination "mail": url: must be an http(s) base URL, got "ftp://x"`},
		{"subject", func(d *config.Destination) { d.Subject = "{{" }, `sendgrid destination "mail": subject: parsing template: template: mail.subject:1: unclosed action`},
		{"address", func(d *config.Destination) { d.Address = "x:1" }, `sendgrid destination "mail": address is not used by sendgrid destinations`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := destination("https://api.sendgrid.test")
			tc.edit(&d)
			s, err := New(d, env)
			switch {
			case tc.want == "" && (err != nil || s == nil):
				t.Fatalf("New = %v, %v", s, err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want) || s != nil):
				t.Fatalf("New = %v, %v; want an error starting %q", s, err, tc.want)
			}
		})
	}
}

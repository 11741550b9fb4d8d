package twilio

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

const (
	sid      = "AC0123456789abcdef0123456789abcdef"
	token    = "auth-token-42"
	tokenEnv = "TWILIO_AUTH_TOKEN"
	service  = "MG0123456789abcdef0123456789abcdef"
)

// request is what the receiver checks of each request.
type request struct {
	Method, Path, Auth, ContentType, Idempotency string
	Form                                         url.Values
}

// answer is one canned response.
type answer struct {
	status int
	header map[string]string
	body   string
}

// receiver plays Twilio's Messages endpoint: it records every request
// and answers them in turn from answers (201 Created when they run out).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	answers  []answer
}

func newReceiver(t *testing.T, answers ...answer) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("reading the request: %v", err)
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Errorf("the body is not a form: %v: %q", err, b)
		}
		r.mu.Lock()
		r.requests = append(r.requests, request{
			Method: req.Method, Path: req.URL.Path, Auth: req.Header.Get("Authorization"),
			ContentType: req.Header.Get("Content-Type"), Idempotency: req.Header.Get(IdempotencyHeader), Form: form,
		})
		a := answer{status: http.StatusCreated}
		if len(r.answers) > 0 {
			a, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		if a.status == http.StatusCreated {
			// The shape of Twilio's Message resource, abridged.
			a.body = fmt.Sprintf(`{"sid": "SM0123456789abcdef0123456789abcdef", "account_sid": %q, "to": %q, "body": %q, "status": "queued", "api_version": "2010-04-01"}`,
				sid, form.Get("To"), form.Get("Body"))
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
	if k == tokenEnv {
		return token
	}
	return ""
}

func destination(base string) config.Destination {
	return config.Destination{Name: "sms", Type: "twilio_sms", URL: base, Username: sid, SecretEnv: tokenEnv, From: "+14155550100"}
}

func activation(id, typ, name, profileID string, traits map[string]any) sink.Activation {
	p, _ := json.Marshal(map[string]any{
		"id": profileID, "identifiers": []map[string]string{{"type": "user_id", "value": "u-" + profileID}},
		"traits": traits, "features": map[string]any{}, "predictions": map[string]any{}, "audiences": []string{name},
	})
	return sink.Activation{ID: id, Type: typ, Name: name, ProfileID: profileID, Timestamp: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Profile: p}
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

var basic = "Basic " + base64.StdEncoding.EncodeToString([]byte(sid+":"+token))

func twilioRequest(id string, form url.Values) request {
	return request{
		Method: "POST", Path: "/2010-04-01/Accounts/" + sid + "/Messages.json", Auth: basic,
		ContentType: "application/x-www-form-urlencoded", Idempotency: id, Form: form,
	}
}

func TestDelivery(t *testing.T) {
	ada := activation("act-1", sink.AudienceEntered, "vip", "p1", map[string]any{"phone": "+14155552345", "first_name": "Ada"})
	bob := activation("act-2", sink.AudienceExited, "vip", "p2", map[string]any{"phone": "+14155552346"})
	for _, tc := range []struct {
		name     string
		from     string
		template string
		batch    []sink.Activation
		want     []request
	}{
		{
			name: "default template", from: "+14155550100", batch: []sink.Activation{ada, bob},
			want: []request{
				twilioRequest("act-1", url.Values{"To": {"+14155552345"}, "From": {"+14155550100"}, "Body": {"Profile p1 entered the audience vip."}}),
				twilioRequest("act-2", url.Values{"To": {"+14155552346"}, "From": {"+14155550100"}, "Body": {"Profile p2 left the audience vip."}}),
			},
		},
		{
			name: "messaging service, own template", from: service,
			template: "Hi {{.ProfileMap.traits.first_name}} 👍 welcome to {{.Name}} & more",
			batch:    []sink.Activation{ada},
			want: []request{
				twilioRequest("act-1", url.Values{"To": {"+14155552345"}, "MessagingServiceSid": {service}, "Body": {"Hi Ada 👍 welcome to vip & more"}}),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t)
			dest := destination(r.URL)
			dest.From, dest.Template = tc.from, tc.template
			s := newTestSink(t, dest)
			if err := s.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.WriteBatch(context.Background(), tc.batch); err != nil {
				t.Fatalf("WriteBatch: %v", err)
			}
			if got := r.received(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("requests\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	twilioError := func(status, code int, msg string) answer {
		return answer{status: status, body: fmt.Sprintf(`{"code": %d, "message": %q, "more_info": "https://www.twilio.com/docs/errors/%d", "status": %d}`, code, msg, code, status)}
	}
	limited := twilioError(429, 20429, "Too Many Requests")
	limited.header = map[string]string{"Retry-After": "7"}
	batch := []sink.Activation{
		activation("a0", sink.AudienceEntered, "vip", "p0", map[string]any{"phone": "+14155552340"}),
		activation("a1", sink.AudienceEntered, "vip", "p1", map[string]any{"email": "no-phone@example.test"}),
		activation("a2", sink.AudienceEntered, "vip", "p2", map[string]any{"phone": "+14155552342"}),
		activation("a3", sink.AudienceEntered, "vip", "p3", map[string]any{"phone": "+14155552343"}),
	}
	type outcome struct {
		permanent  bool
		retryAfter time.Duration // 0: none
		contains   string
	}
	for _, tc := range []struct {
		name    string
		answers []answer
		sent    int // requests that reach the receiver
		want    map[int]outcome
	}{
		{
			name:    "400 is permanent, the batch goes on",
			answers: []answer{twilioError(400, 21211, "The 'To' number +14155552340 is not a valid phone number.")},
			sent:    3,
			want: map[int]outcome{
				0: {permanent: true, contains: "400 Bad Request: Twilio error 21211: The 'To' number +14155552340 is not a valid phone number."},
				1: {permanent: true, contains: `profile p1 has no "phone" trait`},
			},
		},
		{
			name:    "429 with Retry-After stops the batch",
			answers: []answer{{status: 201}, limited},
			sent:    2,
			want: map[int]outcome{
				1: {permanent: true, contains: `profile p1 has no "phone" trait`},
				2: {retryAfter: 7 * time.Second, contains: "429 Too Many Requests"},
				3: {retryAfter: 7 * time.Second, contains: "429 Too Many Requests"},
			},
		},
		{
			name:    "503 without Retry-After is retried",
			answers: []answer{{status: 503, body: "upstream down"}},
			sent:    1,
			want: map[int]outcome{
				0: {contains: "503 Service Unavailable: upstream down"},
				1: {contains: "503"}, 2: {contains: "503"}, 3: {contains: "503"},
			},
		},
		{
			name:    "401 is permanent",
			answers: []answer{twilioError(401, 20003, "Authenticate"), twilioError(401, 20003, "Authenticate"), twilioError(401, 20003, "Authenticate")},
			sent:    3,
			want: map[int]outcome{
				0: {permanent: true, contains: "Twilio error 20003: Authenticate"},
				1: {permanent: true, contains: "phone"},
				2: {permanent: true, contains: "401"},
				3: {permanent: true, contains: "401"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t, tc.answers...)
			s := newTestSink(t, destination(r.URL))
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
				t.Errorf("%d requests reached Twilio, want %d", got, tc.sent)
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
		{"account", func(d *config.Destination) { d.Username = "me" }, `twilio_sms destination "sms": username: must be the Twilio account SID (AC and 32 hex digits), got "me"`},
		{"secret_env", func(d *config.Destination) { d.SecretEnv = "" }, `twilio_sms destination "sms": secret_env: must name the variable holding the auth token`},
		{"token unset", func(d *config.Destination) { d.SecretEnv = "NOPE" }, `twilio_sms destination "sms": secret_env: variable NOPE is unset or empty`},
		{"from", func(d *config.Destination) { d.From = "" }, `twilio_sms destination "sms": from: must not be empty`},
		{"url", func(d *config.Destination) { d.URL = "api.twilio.com" }, `twilio_sms destination "sms": url: must be an http(s) base URL, got "api.twilio.com"`},
		{"template", func(d *config.Destination) { d.Template = "{{.Name" }, `twilio_sms destination "sms": template: parsing template: template: sms.template:1: unclosed action`},
		{"subject", func(d *config.Destination) { d.Subject = "x" }, `twilio_sms destination "sms": subject is not used by twilio_sms destinations`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := destination("https://api.twilio.test")
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

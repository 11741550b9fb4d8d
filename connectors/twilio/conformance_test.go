package twilio

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newConformReceiver(t, env.Now)
	}})
}

// conformTemplate makes the SMS carry what the suite checks.
const conformTemplate = "{{.ID}}|{{.Type}}|{{.Name}}|{{.ProfileID}}"

// conformReceiver is Twilio's Messages endpoint for the conformance
// suite: it checks that every request is exactly the documented one and
// fails on demand.
type conformReceiver struct {
	t   *testing.T
	now func() time.Time
	srv *httptest.Server

	*sinktest.Faults
}

func newConformReceiver(t *testing.T, now func() time.Time) *conformReceiver {
	r := &conformReceiver{t: t, now: now, Faults: sinktest.NewFaults()}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() {
		r.Heal()
		r.srv.Close()
	})
	return r
}

func (r *conformReceiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.URL, dest.Username, dest.SecretEnv, dest.From = "twilio_sms", r.srv.URL, sid, tokenEnv, "+14155550100"
	dest.Template = conformTemplate
	s, err := New(dest, env)
	return dest, s, err
}

func (r *conformReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.t.Errorf("reading the request: %v", err)
		return
	}
	rec := r.check(req, body)

	kind, retryAfter, stall := r.Record(rec)

	w.Header().Set("Content-Type", "application/json")
	switch kind {
	case sinktest.Down:
		http.Error(w, `{"code": 20500, "message": "Internal Server Error", "status": 500}`, http.StatusInternalServerError)
	case sinktest.Reject:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"code": 21211, "message": "The 'To' number is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`)
	case sinktest.Throttle:
		w.Header().Set("Retry-After", strings.TrimSuffix(retryAfter.String(), "s"))
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"code": 20429, "message": "Too Many Requests", "status": 429}`)
	case sinktest.Stall:
		select {
		case <-stall:
			http.Error(w, "was stalled", http.StatusServiceUnavailable)
		case <-req.Context().Done():
		}
	default:
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}`)
	}
}

// check verifies the request is Twilio's documented Create Message request
// and returns what it carries.
func (r *conformReceiver) check(req *http.Request, body []byte) sinktest.Received {
	t := r.t
	if want := "/2010-04-01/Accounts/" + sid + "/Messages.json"; req.Method != http.MethodPost || req.URL.Path != want {
		t.Errorf("request %s %s, want POST %s", req.Method, req.URL.Path, want)
	}
	for h, want := range map[string]string{"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		t.Errorf("the body is not a form: %v: %q", err, body)
	}
	keys := make([]string, 0, len(form))
	for k, v := range form {
		keys = append(keys, k)
		if len(v) != 1 {
			t.Errorf("form field %s given %d times", k, len(v))
		}
	}
	slices.Sort(keys)
	if want := []string{"Body", "From", "To"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("form fields %v, want %v", keys, want)
	}
	if to := form.Get("To"); !strings.HasPrefix(to, "+1555000") || form.Get("From") != "+14155550100" {
		t.Errorf("To %q From %q, want the profile's phone and the destination's number", to, form.Get("From"))
	}
	parts := strings.Split(form.Get("Body"), "|")
	if len(parts) != 4 {
		t.Errorf("Body %q is not the template's", form.Get("Body"))
		parts = make([]string, 4)
	}
	key := req.Header.Get(IdempotencyHeader)
	if key == "" || key != parts[0] {
		t.Errorf("%s %q, want the activation id %q", IdempotencyHeader, key, parts[0])
	}
	return sinktest.Received{Key: key, ActivationID: parts[0], Type: parts[1], Name: parts[2], ProfileID: parts[3], At: r.now()}
}

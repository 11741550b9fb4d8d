package sendgrid

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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

// conformSubject makes the mail's subject carry what the suite checks.
const conformSubject = "{{.ID}}|{{.Type}}|{{.Name}}|{{.ProfileID}}"

// conformReceiver is SendGrid's Mail Send endpoint for the conformance
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
	dest.Type, dest.URL, dest.SecretEnv, dest.From = "sendgrid", r.srv.URL, keyEnv, "Shop CRM <crm@shop.test>"
	dest.Subject = conformSubject
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
		// Drop the connection without an answer.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			r.t.Errorf("hijacking: %v", err)
			return
		}
		conn.Close()
	case sinktest.Reject:
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}]}`)
	case sinktest.Throttle:
		w.Header().Set("Retry-After", strings.TrimSuffix(retryAfter.String(), "s"))
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `{"errors": [{"message": "too many requests"}]}`)
	case sinktest.Stall:
		select {
		case <-stall:
			http.Error(w, "was stalled", http.StatusServiceUnavailable)
		case <-req.Context().Done():
		}
	default:
		w.WriteHeader(http.StatusAccepted)
	}
}

// check verifies the request is SendGrid's documented Mail Send request
// and returns what it carries.
func (r *conformReceiver) check(req *http.Request, body []byte) sinktest.Received {
	t := r.t
	if req.Method != http.MethodPost || req.URL.Path != "/v3/mail/send" {
		t.Errorf("request %s %s, want POST /v3/mail/send", req.Method, req.URL.Path)
	}
	for h, want := range map[string]string{"Authorization": "Bearer " + apiKey, "Content-Type": "application/json"} {
		if got := req.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	var m struct {
		Personalizations []struct {
			To []struct {
				Email string `json:"email"`
			} `json:"to"`
			Headers    map[string]string `json:"headers"`
			CustomArgs map[string]string `json:"custom_args"`
		} `json:"personalizations"`
		From    struct{ Email, Name string }   `json:"from"`
		Subject string                         `json:"subject"`
		Content []struct{ Type, Value string } `json:"content"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		t.Errorf("the body is not the documented mail: %v: %s", err, body)
	}
	if len(m.Personalizations) != 1 || len(m.Personalizations[0].To) != 1 || len(m.Content) != 1 {
		t.Errorf("want one personalization to one address with one content: %s", body)
		return sinktest.Received{At: r.now()}
	}
	p := m.Personalizations[0]
	if !strings.HasSuffix(p.To[0].Email, "@example.com") || m.From.Email != "crm@shop.test" || m.From.Name != "Shop CRM" ||
		m.Content[0].Type != "text/plain" || m.Content[0].Value == "" {
		t.Errorf("to %q, from %+v, content %+v: want the profile's email, the destination's sender, text", p.To[0].Email, m.From, m.Content)
	}
	parts := strings.Split(m.Subject, "|")
	if len(parts) != 4 {
		t.Errorf("subject %q is not the template's", m.Subject)
		parts = make([]string, 4)
	}
	key := p.CustomArgs[ActivationIDArg]
	if key == "" || key != parts[0] || p.Headers[ActivationIDHeader] != key || len(p.CustomArgs) != 1 || len(p.Headers) != 1 {
		t.Errorf("custom_args %v, headers %v: want the activation id %q", p.CustomArgs, p.Headers, parts[0])
	}
	return sinktest.Received{Key: key, ActivationID: parts[0], Type: parts[1], Name: parts[2], ProfileID: parts[3], At: r.now()}
}

package smtp

import (
	"bytes"
	"crypto/tls"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newConformReceiver(t, env.Now)
	}})
}

// conformSubject makes the subject carry what the suite checks.
const conformSubject = "{{.ID}}|{{.Type}}|{{.Name}}|{{.ProfileID}}"

// conformReceiver is an in-process SMTP server (STARTTLS, AUTH PLAIN) for
// the conformance suite: it checks every message's envelope and headers
// and fails on demand once it has read a message: Down answers 451 (try
// again), Reject 554 (refused for good), Stall holds the answer until
// Heal. SMTP has no Retry-After, so Throttle is not offered.
type conformReceiver struct {
	t   *testing.T
	now func() time.Time
	srv *server

	mu    sync.Mutex
	got   []sinktest.Received
	fault sinktest.Fault
	left  int
	stall chan struct{}
}

func newConformReceiver(t *testing.T, now func() time.Time) *conformReceiver {
	r := &conformReceiver{t: t, now: now, stall: make(chan struct{})}
	r.srv = startServer(t, []string{sasl.Plain}, true)
	r.srv.onData = r.onData
	t.Cleanup(r.Heal) // before the server's cleanup: release stalled sessions
	return r
}

func (r *conformReceiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.Address, dest.From = "smtp", r.srv.addr, "Tessera <crm@shop.test>"
	dest.Username, dest.SecretEnv = testUser, passwordEnv
	dest.Subject = conformSubject
	s, err := NewTLS(dest, env(map[string]string{passwordEnv: testPassword}), &tls.Config{RootCAs: r.srv.roots})
	if err != nil {
		return dest, nil, err
	}
	return dest, s, nil
}

func (r *conformReceiver) Received() []sinktest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *conformReceiver) Inject(f sinktest.Fault) bool {
	if f.Kind == sinktest.Throttle {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault, r.left = f, f.Times
	return true
}

func (r *conformReceiver) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault, r.left = sinktest.Fault{}, 0
	select {
	case <-r.stall:
	default:
		close(r.stall)
	}
}

func (r *conformReceiver) onData(d delivery) error {
	rec := r.check(d)
	r.mu.Lock()
	kind := r.fault.Kind
	switch {
	case kind == sinktest.Stall:
	case kind != 0 && r.left > 0:
		r.left--
	default:
		kind = 0
	}
	rec.Refused = kind
	r.got = append(r.got, rec)
	stall := r.stall
	r.mu.Unlock()

	switch kind {
	case sinktest.Down:
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	case sinktest.Reject:
		return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1}, Message: "message refused"}
	case sinktest.Stall:
		<-stall
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "was stalled"}
	}
	return nil
}

// check verifies the message was sent as specified and returns what it
// carries.
func (r *conformReceiver) check(d delivery) sinktest.Received {
	t := r.t
	if !d.TLS || d.Auth != sasl.Plain || d.From != "crm@shop.test" || len(d.To) != 1 || !strings.HasSuffix(d.To[0], "@example.com") {
		t.Errorf("envelope %+v: want over TLS, authenticated, from crm@shop.test to the profile's email", d)
	}
	m, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Errorf("parsing the message: %v", err)
		return sinktest.Received{At: r.now()}
	}
	key := m.Header.Get(HeaderActivationID)
	if got, want := m.Header.Get("Message-Id"), "<"+MessageID(key, "crm@shop.test")+">"; key == "" || got != want {
		t.Errorf("Message-Id %q, want %q", got, want)
	}
	if got := m.Header.Get("To"); len(d.To) == 1 && got != "<"+d.To[0]+">" {
		t.Errorf("To %q, want the envelope's <%s>", got, d.To[0])
	}
	parts := strings.Split(m.Header.Get("Subject"), "|")
	if len(parts) != 4 {
		t.Errorf("subject %q is not the template's", m.Header.Get("Subject"))
		parts = make([]string, 4)
	}
	if key != parts[0] {
		t.Errorf("%s %q, want the activation id %q", HeaderActivationID, key, parts[0])
	}
	return sinktest.Received{Key: key, ActivationID: parts[0], Type: parts[1], Name: parts[2], ProfileID: parts[3], At: r.now()}
}

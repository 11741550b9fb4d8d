// Package twilio is the twilio_sms sink: it texts each activation through
// Twilio's Programmable Messaging API, one Create Message request per
// activation:
//
//	POST {url}/2010-04-01/Accounts/{AccountSid}/Messages.json
//	Authorization: Basic base64(AccountSid:AuthToken)
//	Content-Type: application/x-www-form-urlencoded
//
//	To={phone trait}&From={from}&Body={template}
//
// with MessagingServiceSid instead of From when from is a Messaging
// Service SID (MG…). Twilio answers 201 Created. The activation id goes in
// the I-Twilio-Idempotency-Token header; Twilio's API description lists no
// idempotency header for Create Message, so it is there for proxies and
// receivers that dedupe, and delivery stays at-least-once.
package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Defaults of the destination's optional fields.
const (
	// DefaultURL is Twilio's API.
	DefaultURL = "https://api.twilio.com"
	// DefaultToTrait is the trait holding the recipient's phone number
	// (E.164, e.g. +14155552345).
	DefaultToTrait = "phone"
	// DefaultBody describes the activation.
	DefaultBody = `Profile {{.ProfileID}} {{if eq .Type "audience_entered"}}entered the audience{{else if eq .Type "audience_exited"}}left the audience{{else}}triggered{{end}} {{.Name}}.`
	// defaultTimeout bounds one request when the destination sets no
	// delivery timeout.
	defaultTimeout = 10 * time.Second
)

// IdempotencyHeader carries the activation id on every request.
const IdempotencyHeader = "I-Twilio-Idempotency-Token"

var (
	accountSID = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSID = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
)

// Sink texts activations. Its methods are safe for concurrent use.
type Sink struct {
	endpoint string // the Messages.json URL
	account  string
	token    string
	from     string
	// fromField is From, or MessagingServiceSid when from is one.
	fromField string
	toTrait   string
	body      *sink.Template
	client    *http.Client
}

// New returns the sink of dest, a twilio_sms destination: username (the
// account SID, required), secret_env (the variable holding the auth
// token, required), from (a Twilio number, sender id or Messaging Service
// SID, required), to_trait, template, and url (Twilio's API by default).
// getenv reads the environment (os.Getenv).
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	s, err := newSink(dest, getenv)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newSink(dest config.Destination, getenv func(string) string) (*Sink, error) {
	fail := func(field string, err error) (*Sink, error) {
		return nil, fmt.Errorf("twilio_sms destination %q: %s: %w", dest.Name, field, err)
	}
	if err := sink.CheckFields(dest, "url", "username", "secret_env", "from", "to_trait", "template"); err != nil {
		return nil, fmt.Errorf("twilio_sms destination %q: %w", dest.Name, err)
	}
	s := &Sink{account: dest.Username, from: dest.From, fromField: "From", toTrait: dest.ToTrait}
	if !accountSID.MatchString(dest.Username) {
		return fail("username", fmt.Errorf("must be the Twilio account SID (AC and 32 hex digits), got %q", dest.Username))
	}
	if dest.SecretEnv == "" {
		return fail("secret_env", errors.New("must name the variable holding the auth token"))
	}
	if s.token = getenv(dest.SecretEnv); s.token == "" {
		return fail("secret_env", fmt.Errorf("variable %s is unset or empty", dest.SecretEnv))
	}
	if strings.TrimSpace(dest.From) == "" {
		return fail("from", errors.New("must not be empty"))
	}
	if serviceSID.MatchString(dest.From) {
		s.fromField = "MessagingServiceSid"
	}
	base := dest.URL
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fail("url", fmt.Errorf("must be an http(s) base URL, got %q", base))
	}
	s.endpoint = strings.TrimRight(base, "/") + "/2010-04-01/Accounts/" + url.PathEscape(dest.Username) + "/Messages.json"
	if s.toTrait == "" {
		s.toTrait = DefaultToTrait
	}
	if s.body, err = sink.ParseTemplate(dest.Name+".template", dest.Template, DefaultBody); err != nil {
		return fail("template", err)
	}
	timeout := time.Duration(dest.Delivery.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	s.client = &http.Client{Timeout: timeout}
	return s, nil
}

// Connect does nothing: a request per activation needs no session, and
// checking the credentials would cost a request to Twilio.
func (s *Sink) Connect(context.Context) error { return nil }

// WriteBatch sends one message per activation, in order. A profile without
// the phone trait, a template that fails and a 4xx answer (400: Twilio
// refuses the number or the body) fail permanently. A 429, a 5xx or a
// network error is retried, after the answer's Retry-After if it has one;
// it also stops the batch: the rest fail with the same error, unsent,
// rather than press on an API that is down or asks us to slow down.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	be := &sink.BatchError{}
	var stop error // the first retryable failure: the rest wait with it
	for i, a := range batch {
		if stop != nil {
			be.Fail(i, stop)
			continue
		}
		err := s.send(ctx, a)
		if err == nil {
			continue
		}
		be.Fail(i, err)
		if !sink.IsPermanent(err) {
			stop = err
		}
	}
	if len(be.Failed) > 0 {
		return be
	}
	return nil
}

// Close drops idle connections; the sink can still deliver after it.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// form returns the form of activation a's message: To, From (or
// MessagingServiceSid) and Body.
func (s *Sink) form(a sink.Activation) (url.Values, error) {
	to, err := sink.Recipient(a, s.toTrait)
	if err != nil {
		return nil, sink.Permanent(err)
	}
	body, err := s.body.Render(a)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(body))
	if text == "" {
		return nil, sink.Permanent(fmt.Errorf("the template renders an empty message for activation %s", a.ID))
	}
	return url.Values{"To": {to}, s.fromField: {s.from}, "Body": {text}}, nil
}

func (s *Sink) send(ctx context.Context, a sink.Activation) error {
	form, err := s.form(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return sink.Permanent(fmt.Errorf("building the request for activation %s: %w", a.ID, err))
	}
	req.SetBasicAuth(s.account, s.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tessera")
	req.Header.Set(IdempotencyHeader, a.ID)
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("sending activation %s to %s: %w", a.ID, form.Get("To"), err)
	}
	defer resp.Body.Close()
	if err := check(resp); err != nil {
		return fmt.Errorf("sending activation %s to %s: %w", a.ID, form.Get("To"), err)
	}
	return nil
}

// check classifies Twilio's answer as sink.CheckHTTPResponse does (2xx
// done; 429, 503 with their Retry-After; 408 and 5xx retried; other 4xx
// permanent), quoting Twilio's error code and message when the body is
// its JSON error ({"code": 21211, "message": "…", "more_info": …}).
func check(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // reuse the connection
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		b = fmt.Appendf(nil, "Twilio error %d: %s", e.Code, e.Message)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	err := sink.CheckHTTPResponse(resp, time.Now())
	if resp.StatusCode == http.StatusConflict {
		// Not an idempotency answer here: Twilio refuses the request.
		return sink.Permanent(fmt.Errorf("HTTP %s: %s", resp.Status, b))
	}
	return err
}

// Notifies marks the sink as a sink.Notifier: it messages people and keeps
// no profiles, so an erasure notice is not for it.
func (*Sink) Notifies() {}

var _ sink.Notifier = (*Sink)(nil)

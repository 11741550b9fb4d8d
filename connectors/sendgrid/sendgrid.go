// Package sendgrid is the sendgrid sink: it mails each activation through
// SendGrid's v3 Mail Send API, one request per activation:
//
//	POST {url}/v3/mail/send
//	Authorization: Bearer {API key}
//	Content-Type: application/json
//
//	{"personalizations": [{"to": [{"email": …}],
//	                       "headers": {"X-Tessera-Activation-Id": id},
//	                       "custom_args": {"tessera_activation_id": id}}],
//	 "from": {"email": …, "name": …}, "subject": …,
//	 "content": [{"type": "text/plain", "value": …}]}
//
// SendGrid answers 202 Accepted. It has no idempotency key; the activation
// id rides in custom_args (SendGrid's event webhook reports it with every
// event) and in a header of the mail, so redeliveries can be told apart.
package sendgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Defaults of the destination's optional fields.
const (
	// DefaultURL is SendGrid's API.
	DefaultURL = "https://api.sendgrid.com"
	// DefaultToTrait is the trait holding the recipient's address.
	DefaultToTrait = "email"
	// DefaultSubject names what happened to whom.
	DefaultSubject = `{{if eq .Type "audience_entered"}}Entered {{.Name}}{{else if eq .Type "audience_exited"}}Left {{.Name}}{{else}}{{.Name}}{{end}}`
	// DefaultBody describes the activation.
	DefaultBody = `Profile {{.ProfileID}} {{if eq .Type "audience_entered"}}entered the audience{{else if eq .Type "audience_exited"}}left the audience{{else}}triggered{{end}} {{.Name}} at {{.Timestamp.UTC.Format "2006-01-02 15:04:05 MST"}}.

Activation {{.ID}}
`
	// defaultTimeout bounds one request when the destination sets no
	// delivery timeout.
	defaultTimeout = 10 * time.Second
)

// Where a mail carries its activation's id.
const (
	// ActivationIDArg is the custom_args key: SendGrid's event webhook
	// reports it with every event of the mail.
	ActivationIDArg = "tessera_activation_id"
	// ActivationIDHeader is the mail header.
	ActivationIDHeader = "X-Tessera-Activation-Id"
)

// message is the body of a Mail Send request, as far as the sink fills it.
type message struct {
	Personalizations []personalization `json:"personalizations"`
	From             address           `json:"from"`
	Subject          string            `json:"subject"`
	Content          []content         `json:"content"`
}

// personalization is one envelope of a message.
type personalization struct {
	To         []address         `json:"to"`
	Headers    map[string]string `json:"headers,omitempty"`
	CustomArgs map[string]string `json:"custom_args,omitempty"`
}

// address is an email address with an optional display name.
type address struct {
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
}

// content is one MIME part of a message.
type content struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Sink mails activations. Its methods are safe for concurrent use.
type Sink struct {
	endpoint string
	key      string
	from     address
	toTrait  string
	subject  *sink.Template
	body     *sink.Template
	client   *http.Client
	now      func() time.Time
}

// New returns the sink of dest, a sendgrid destination: secret_env (the
// variable holding the API key, required), from (required), to_trait,
// subject, template, and url (SendGrid's API by default). getenv reads
// the environment (os.Getenv).
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	s, err := newSink(dest, getenv)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newSink(dest config.Destination, getenv func(string) string) (*Sink, error) {
	fail := func(field string, err error) (*Sink, error) {
		return nil, fmt.Errorf("sendgrid destination %q: %s: %w", dest.Name, field, err)
	}
	if err := sink.CheckFields(dest, "url", "secret_env", "from", "to_trait", "subject", "template"); err != nil {
		return nil, fmt.Errorf("sendgrid destination %q: %w", dest.Name, err)
	}
	s := &Sink{toTrait: dest.ToTrait, now: time.Now}
	if dest.SecretEnv == "" {
		return fail("secret_env", errors.New("must name the variable holding the API key"))
	}
	if s.key = getenv(dest.SecretEnv); s.key == "" {
		return fail("secret_env", fmt.Errorf("variable %s is unset or empty", dest.SecretEnv))
	}
	if dest.From == "" {
		return fail("from", errors.New("must not be empty"))
	}
	from, err := mail.ParseAddress(dest.From)
	if err != nil {
		return fail("from", fmt.Errorf("must be an email address, got %q: %w", dest.From, err))
	}
	s.from = address{Email: from.Address, Name: from.Name}
	base := dest.URL
	if base == "" {
		base = DefaultURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fail("url", fmt.Errorf("must be an http(s) base URL, got %q", base))
	}
	s.endpoint = strings.TrimRight(base, "/") + "/v3/mail/send"
	if s.toTrait == "" {
		s.toTrait = DefaultToTrait
	}
	if s.subject, err = sink.ParseTemplate(dest.Name+".subject", dest.Subject, DefaultSubject); err != nil {
		return fail("subject", err)
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
// SendGrid has no free call that checks a key's mail.send scope.
func (s *Sink) Connect(context.Context) error { return nil }

// WriteBatch sends one mail per activation, in order. A profile without
// the address trait, a template that fails and a 4xx answer fail
// permanently. A 429, a 5xx or a network error is retried, after the
// answer's Retry-After (or, as SendGrid's rate limits say it,
// X-RateLimit-Reset); it also stops the batch: the rest fail with the same
// error, unsent.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	be := &sink.BatchError{}
	var stop error // the first retryable failure: the rest wait with it
	for i, a := range batch {
		if stop != nil {
			be.Fail(i, stop)
			continue
		}
		if err := s.send(ctx, a); err != nil {
			be.Fail(i, err)
			if !sink.IsPermanent(err) {
				stop = err
			}
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

// mail returns the message of activation a.
func (s *Sink) mail(a sink.Activation) (message, error) {
	to, err := sink.Recipient(a, s.toTrait)
	if err != nil {
		return message{}, sink.Permanent(err)
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return message{}, sink.Permanent(fmt.Errorf("profile %s: trait %q is not an email address (%q): %w", a.ProfileID, s.toTrait, to, err))
	}
	subject, err := s.subject.Render(a)
	if err != nil {
		return message{}, err
	}
	body, err := s.body.Render(a)
	if err != nil {
		return message{}, err
	}
	m := message{
		Personalizations: []personalization{{
			To:         []address{{Email: rcpt.Address, Name: rcpt.Name}},
			Headers:    map[string]string{ActivationIDHeader: a.ID},
			CustomArgs: map[string]string{ActivationIDArg: a.ID},
		}},
		From:    s.from,
		Subject: strings.TrimSpace(string(subject)),
		Content: []content{{Type: "text/plain", Value: string(body)}},
	}
	// SendGrid refuses an empty subject or content (minLength 1).
	if m.Subject == "" || strings.TrimSpace(m.Content[0].Value) == "" {
		return message{}, sink.Permanent(fmt.Errorf("the templates render an empty subject or body for activation %s", a.ID))
	}
	return m, nil
}

func (s *Sink) send(ctx context.Context, a sink.Activation) error {
	m, err := s.mail(a)
	if err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return sink.Permanent(fmt.Errorf("encoding the mail of activation %s: %w", a.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(b))
	if err != nil {
		return sink.Permanent(fmt.Errorf("building the request for activation %s: %w", a.ID, err))
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tessera")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("sending activation %s to %s: %w", a.ID, m.Personalizations[0].To[0].Email, err)
	}
	defer resp.Body.Close()
	if err := s.check(resp); err != nil {
		return fmt.Errorf("sending activation %s to %s: %w", a.ID, m.Personalizations[0].To[0].Email, err)
	}
	return nil
}

// check classifies SendGrid's answer as sink.CheckHTTPResponse does (2xx
// done; 429, 503 with their Retry-After; 408 and 5xx retried; other 4xx
// permanent), quoting SendGrid's error messages ({"errors": [{"message":
// …, "field": …}]}). A 429 without Retry-After waits until its
// X-RateLimit-Reset (a Unix time), as SendGrid documents its limits.
func (s *Sink) check(resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // reuse the connection
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e struct {
		Errors []struct {
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Errors) > 0 {
		var msgs []string
		for _, x := range e.Errors {
			if x.Field != "" {
				msgs = append(msgs, x.Field+": "+x.Message)
			} else {
				msgs = append(msgs, x.Message)
			}
		}
		b = []byte("SendGrid: " + strings.Join(msgs, "; "))
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	now := s.now()
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			resp.Header.Set("Retry-After", strconv.FormatInt(max(reset-now.Unix(), 0), 10))
		}
	}
	if resp.StatusCode == http.StatusConflict {
		// Not an idempotency answer here: SendGrid refuses the request.
		return sink.Permanent(fmt.Errorf("HTTP %s: %s", resp.Status, b))
	}
	return sink.CheckHTTPResponse(resp, now)
}

// Notifies marks the sink as a sink.Notifier: it messages people and keeps
// no profiles, so an erasure notice is not for it.
func (*Sink) Notifies() {}

var _ sink.Notifier = (*Sink)(nil)

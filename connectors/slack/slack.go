// Package slack is the Slack sink: each activation becomes a message
// posted to a Slack incoming webhook.
//
// The request is Slack's documented one: POST to the webhook URL with
// Content-Type: application/json and the body {"text": "<message>"}, where
// the message is the destination's template rendered (see sink.Template),
// or DefaultTemplate. Slack answers 200 with the body "ok"; anything else
// is an error, classified as sink.CheckHTTPResponse does (429 carries a
// Retry-After in seconds). The activation id goes in an Idempotency-Key
// header too, for proxies that deduplicate; Slack itself ignores it.
//
// The incoming-webhook URL is itself a credential. It is given either as
// url, or, better, in the environment variable secret_env names: exactly
// one of the two.
//
// The messages of a batch are posted one after another (Slack allows
// about one a second per webhook); when Slack asks to wait, the rest of
// the batch waits too, and is reported failed with the same Retry-After
// without being sent.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// DefaultTemplate is the message of a destination without a template,
// such as "Profile p1 (ada@example.com) entered the audience vip".
const DefaultTemplate = `Profile {{.ProfileID}}{{with .ProfileMap}}{{with .traits}}{{with .email}} ({{.}}){{end}}{{end}}{{end}} ` +
	`{{if eq .Type "audience_entered"}}entered the audience{{else if eq .Type "audience_exited"}}left the audience{{else}}triggered{{end}} {{.Name}}`

// Sink is the Slack sink. Build it with New.
type Sink struct {
	name   string
	url    string
	tmpl   *sink.Template
	client *http.Client
	now    func() time.Time
}

// New returns the Slack sink of dest: one of url and secret_env (the
// variable holding the webhook URL) is required, template is optional.
// getenv reads the variable (os.Getenv in production).
func New(dest config.Destination, getenv func(string) string) (sink.Sink, error) {
	if err := sink.CheckFields(dest, "url", "secret_env", "template"); err != nil {
		return nil, fmt.Errorf("slack %s: %w", dest.Name, err)
	}
	u := dest.URL
	switch {
	case u != "" && dest.SecretEnv != "":
		return nil, fmt.Errorf("slack %s: set url or secret_env (the variable holding the webhook URL), not both", dest.Name)
	case dest.SecretEnv != "":
		if u = getenv(dest.SecretEnv); u == "" {
			return nil, fmt.Errorf("slack %s: the webhook URL $%s is empty or unset", dest.Name, dest.SecretEnv)
		}
	case u == "":
		return nil, fmt.Errorf("slack %s: url or secret_env (the variable holding the webhook URL) is required", dest.Name)
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return nil, fmt.Errorf("slack %s: the webhook URL must be an absolute http or https URL", dest.Name) // not quoted: it is a secret
	}
	tmpl, err := sink.ParseTemplate(dest.Name+".template", dest.Template, DefaultTemplate)
	if err != nil {
		return nil, fmt.Errorf("slack %s: %w", dest.Name, err)
	}
	return &Sink{
		name:   dest.Name,
		url:    u,
		tmpl:   tmpl,
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		now:    time.Now,
	}, nil
}

// Connect does nothing: each message is its own request.
func (s *Sink) Connect(context.Context) error { return nil }

// WriteBatch posts the batch's messages in order.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	var errs sink.BatchError
	for i, a := range batch {
		err := s.post(ctx, a)
		if err == nil {
			continue
		}
		if len(batch) == 1 {
			return err
		}
		errs.Fail(i, err)
		if d, ok := sink.RetryAfterOf(err); ok {
			for j := i + 1; j < len(batch); j++ {
				errs.Fail(j, sink.RetryAfter(fmt.Errorf("not sent: Slack asked to wait: %w", err), d))
			}
			break
		}
	}
	if len(errs.Failed) > 0 {
		return &errs
	}
	return nil
}

func (s *Sink) post(ctx context.Context, a sink.Activation) error {
	text, err := s.tmpl.Render(a)
	if err != nil {
		return err
	}
	body, err := json.Marshal(struct {
		Text string `json:"text"`
	}{string(text)})
	if err != nil {
		return sink.Permanent(fmt.Errorf("encoding the message: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return sink.Permanent(fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tessera")
	req.Header.Set(sink.IdempotencyKeyHeader, a.ID)
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the URL, a secret
		}
		return fmt.Errorf("posting to Slack: %w", err)
	}
	defer resp.Body.Close()
	if err := sink.CheckHTTPResponse(resp, s.now()); err != nil {
		return fmt.Errorf("posting to Slack: %w", err)
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if got := strings.TrimSpace(string(answer)); got != "ok" {
		return sink.Permanent(fmt.Errorf("posting to Slack: answered HTTP %d %q, not ok", resp.StatusCode, got))
	}
	return nil
}

// Close releases idle connections. It is idempotent.
func (s *Sink) Close(context.Context) error {
	s.client.CloseIdleConnections()
	return nil
}

// Notifies marks the sink as a sink.Notifier: it messages people and keeps
// no profiles, so an erasure notice is not for it.
func (*Sink) Notifies() {}

var _ sink.Notifier = (*Sink)(nil)
